package dev.chunkscope.client;

import dev.chunkscope.v1.DetectInput;
import dev.chunkscope.v1.DetectionConfig;
import dev.chunkscope.v1.StreamDetectRequest;
import dev.chunkscope.v1.StreamDetectResponse;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * An open {@code DetectionService.StreamDetect} call: a monitoring stream on which inputs are sent
 * as they come and one result per input arrives, in order.
 *
 * <p>The {@link DetectionConfig} is sent when the session opens. {@link #send} queues inputs
 * without waiting; the results are read by iterating the session (blocking until the next one
 * arrives); {@link #complete()} says no more inputs will come, after which iteration ends once
 * every result has been read. {@link #close()} cancels the call unless it has ended. Sending is
 * safe from one thread while another reads.
 *
 * <pre>{@code
 * try (StreamDetectSession session = client.streamDetect(config)) {
 *   session.send("first text");
 *   session.send("second text");
 *   session.complete();
 *   for (StreamDetectResponse reply : session) {
 *     System.out.println(reply.getSequence() + ": " + reply.getResult().getSummariesList());
 *   }
 * }
 * }</pre>
 */
public final class StreamDetectSession implements Iterable<StreamDetectResponse>, AutoCloseable {
  /** The end of the call, in the replies' queue: {@code error} is null on success. */
  private record End(Throwable error) {}

  private final BlockingQueue<Object> replies = new LinkedBlockingQueue<>();
  private volatile ClientCallStreamObserver<StreamDetectRequest> requests;
  private boolean completed;
  private volatile boolean ended;

  StreamDetectSession() {}

  /** The observer handed to the async stub; it captures the request side before the call starts. */
  ClientResponseObserver<StreamDetectRequest, StreamDetectResponse> observer() {
    return new ClientResponseObserver<>() {
      @Override
      public void beforeStart(ClientCallStreamObserver<StreamDetectRequest> requestStream) {
        requests = requestStream;
      }

      @Override
      public void onNext(StreamDetectResponse reply) {
        replies.add(reply);
      }

      @Override
      public void onError(Throwable error) {
        replies.add(new End(error));
      }

      @Override
      public void onCompleted() {
        replies.add(new End(null));
      }
    };
  }

  void open(DetectionConfig config) {
    send(StreamDetectRequest.newBuilder().setConfig(config).build());
  }

  /** Sends a text to detect on. */
  public void send(String text) {
    send(DetectInput.newBuilder().setText(text).build());
  }

  /** Sends an input (a text or a symbol sequence for recurrent models). */
  public void send(DetectInput input) {
    send(StreamDetectRequest.newBuilder().setInput(input).build());
  }

  /**
   * Sends the next segment of the previous input: the model sees both together and positions in the
   * result continue from the earlier segment.
   */
  public void sendContinuation(String text) {
    send(
        StreamDetectRequest.newBuilder()
            .setInput(DetectInput.newBuilder().setText(text))
            .setContinues(true)
            .build());
  }

  /** Sends a raw request message. */
  public synchronized void send(StreamDetectRequest request) {
    if (completed) {
      throw new IllegalStateException("the session was completed: no more inputs can be sent");
    }
    requests.onNext(request);
  }

  /**
   * Sends a text and waits for its result. Only for sessions used one input at a time (with no
   * results left unread).
   */
  public StreamDetectResponse detect(String text) {
    send(text);
    Iterator<StreamDetectResponse> results = iterator();
    if (!results.hasNext()) {
      throw new ChunkscopeException(
          io.grpc.Status.Code.INTERNAL, "the stream ended without a result for the input");
    }
    return results.next();
  }

  /** No more inputs: the server answers what it has and ends the call. Idempotent. */
  public synchronized void complete() {
    if (!completed) {
      completed = true;
      requests.onCompleted();
    }
  }

  /**
   * The results, in input order, as they arrive. Each {@code hasNext()} blocks until a result or
   * the end of the call; a failed call throws {@link ChunkscopeException}.
   */
  @Override
  public Iterator<StreamDetectResponse> iterator() {
    return new Iterator<>() {
      private StreamDetectResponse next;

      @Override
      public boolean hasNext() {
        if (next != null) {
          return true;
        }
        if (ended) {
          return false;
        }
        Object item;
        try {
          item = replies.take();
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          close();
          throw new ChunkscopeException(io.grpc.Status.Code.CANCELLED, "interrupted");
        }
        if (item instanceof End end) {
          ended = true;
          if (end.error() != null) {
            throw ChunkscopeException.from(end.error());
          }
          return false;
        }
        next = (StreamDetectResponse) item;
        return true;
      }

      @Override
      public StreamDetectResponse next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        StreamDetectResponse reply = next;
        next = null;
        return reply;
      }
    };
  }

  /** Cancels the call if it has not ended (results not yet read are dropped). Idempotent. */
  @Override
  public synchronized void close() {
    if (!ended) {
      ended = true;
      completed = true;
      requests.cancel("closed by the client", null);
    }
  }
}
