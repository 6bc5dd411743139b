package dev.chunkscope.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * The replies of a server-streaming call, read one at a time as they arrive.
 *
 * <p>Like {@link java.nio.file.DirectoryStream}, it is iterated once and must be closed: closing it
 * before the end cancels the call on the server (an extraction stops, a generation stops). Errors
 * surface as {@link ChunkscopeException} from {@code hasNext()}/{@code next()}.
 *
 * <pre>{@code
 * try (ResponseStream<GenerateResponse> tokens = client.generate(request)) {
 *   for (GenerateResponse token : tokens) {
 *     System.out.print(token.getToken());
 *   }
 * }
 * }</pre>
 *
 * @param <T> the reply message type
 */
public final class ResponseStream<T> implements Iterable<T>, AutoCloseable {
  private final Context.CancellableContext context;
  private final Iterator<T> replies;
  private boolean iterated;
  private boolean finished;

  private ResponseStream(Context.CancellableContext context, Iterator<T> replies) {
    this.context = context;
    this.replies = replies;
  }

  static <Q, R> ResponseStream<R> start(
      Channel channel, MethodDescriptor<Q, R> method, CallOptions options, Q request) {
    // The call belongs to a context of its own, so close() can cancel it.
    Context.CancellableContext context = Context.current().withCancellation();
    Context previous = context.attach();
    try {
      return new ResponseStream<>(
          context, ClientCalls.blockingServerStreamingCall(channel, method, options, request));
    } catch (RuntimeException error) {
      context.cancel(error);
      throw ChunkscopeException.from(error);
    } finally {
      context.detach(previous);
    }
  }

  /** The replies, once. */
  @Override
  public Iterator<T> iterator() {
    if (iterated) {
      throw new IllegalStateException("a ResponseStream can be iterated only once");
    }
    iterated = true;
    return new Iterator<>() {
      @Override
      public boolean hasNext() {
        if (finished) {
          return false;
        }
        try {
          boolean more = replies.hasNext();
          if (!more) {
            finished = true;
            context.close();
          }
          return more;
        } catch (RuntimeException error) {
          finished = true;
          context.cancel(error);
          throw ChunkscopeException.from(error);
        }
      }

      @Override
      public T next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return replies.next();
      }
    };
  }

  /** The replies as a sequential {@link Stream}; closing the stream cancels the call. */
  public Stream<T> stream() {
    return StreamSupport.stream(
            Spliterators.spliteratorUnknownSize(
                iterator(), Spliterator.ORDERED | Spliterator.NONNULL),
            false)
        .onClose(this::close);
  }

  /** Cancels the call unless it has already ended; idempotent. */
  @Override
  public void close() {
    if (!finished) {
      finished = true;
      context.cancel(null);
    }
  }
}
