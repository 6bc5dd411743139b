package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.chunkscope.v1.ConceptWords;
import dev.chunkscope.v1.Corpus;
import dev.chunkscope.v1.Dictionary;
import dev.chunkscope.v1.DictionaryServiceGrpc;
import dev.chunkscope.v1.ExtractDictionaryRequest;
import dev.chunkscope.v1.ExtractDictionaryResponse;
import dev.chunkscope.v1.ExtractionProgress;
import dev.chunkscope.v1.ExtractionResult;
import dev.chunkscope.v1.ModelRef;
import dev.chunkscope.v1.PopulationAveragingParams;
import dev.chunkscope.v1.TextList;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall.SimpleForwardingClientCall;
import io.grpc.ForwardingClientCallListener.SimpleForwardingClientCallListener;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The wrappers that return a stream's result read the stream to its end, so the call ends with the
 * server's OK status instead of being cancelled after the server has finished.
 */
class StreamEndTest {
  private static final Pattern HANDLED =
      Pattern.compile("^grpc_server_handled_total\\{([^}]*)\\} (\\S+)$", Pattern.MULTILINE);
  private static final Pattern CODE = Pattern.compile("grpc_code=\"(\\w+)\"");

  /** The status each call ended with, by full method name. */
  static final class CallEnds implements ClientInterceptor {
    final Map<String, CompletableFuture<Status>> ends = new ConcurrentHashMap<>();

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
        MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      CompletableFuture<Status> end =
          ends.computeIfAbsent(method.getFullMethodName(), name -> new CompletableFuture<>());
      return new SimpleForwardingClientCall<>(next.newCall(method, options)) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          super.start(
              new SimpleForwardingClientCallListener<>(listener) {
                @Override
                public void onClose(Status status, Metadata trailers) {
                  end.complete(status);
                  super.onClose(status, trailers);
                }
              },
              headers);
        }
      };
    }
  }

  /** grpc_server_handled_total of one method on the fixture's server, by grpc_code. */
  private static Map<String, Double> handled(String method) throws Exception {
    HttpResponse<String> reply =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(Fixture.env("METRICS_URL"))).build(),
                HttpResponse.BodyHandlers.ofString());
    Map<String, Double> counts = new HashMap<>();
    Matcher line = HANDLED.matcher(reply.body());
    while (line.find()) {
      if (line.group(1).contains("grpc_method=\"" + method + "\"")) {
        Matcher code = CODE.matcher(line.group(1));
        if (code.find()) {
          counts.put(code.group(1), Double.parseDouble(line.group(2)));
        }
      }
    }
    return counts;
  }

  private static ExtractDictionaryRequest request(String model) {
    List<String> texts =
        IntStream.range(0, 12)
            .mapToObj(i -> "On day " + i + " the cat slept near the window while the cake cooled.")
            .toList();
    return ExtractDictionaryRequest.newBuilder()
        .setModel(ModelRef.newBuilder().setName(model))
        .addHookPoints("blocks.0.resid_post") // not the fixture's: the examples pick that one
        .setCorpus(Corpus.newBuilder().setTexts(TextList.newBuilder().addAllTexts(texts)))
        .setPopulationAveraging(
            PopulationAveragingParams.newBuilder()
                .addConcepts(ConceptWords.newBuilder().setConcept("cat"))
                .addConcepts(ConceptWords.newBuilder().setConcept("cake"))
                .setNSamples(4))
        .build();
  }

  @Test
  void extractDictionaryReadsToTheServersOk() throws Exception {
    CallEnds ends = new CallEnds();
    ExtractDictionaryRequest request = request(Fixture.model());
    Map<String, Double> before = handled("ExtractDictionary");
    try (ChunkscopeClient client =
        ChunkscopeClient.builder()
            .address(Fixture.address())
            .token(Fixture.token())
            .intercept(ends)
            .build()) {
      List<Dictionary> stored = client.extractDictionary(request);
      assertEquals(1, stored.size());
      assertEquals(2, stored.get(0).getEntriesCount());
      Status end =
          ends.ends
              .get(DictionaryServiceGrpc.getExtractDictionaryMethod().getFullMethodName())
              .get(10, TimeUnit.SECONDS);
      client.deleteDictionary(stored.get(0).getId());
      assertEquals(Status.Code.OK, end.getCode(), end.toString());
    }
    Map<String, Double> after = handled("ExtractDictionary");
    Map<String, Double> changed = new HashMap<>();
    after.forEach(
        (code, n) -> {
          double delta = n - before.getOrDefault(code, 0.0);
          if (delta != 0) {
            changed.put(code, delta);
          }
        });
    assertEquals(Map.of("OK", 1.0), changed, "before " + before + ", after " + after);
  }

  /**
   * The same contract, made deterministic: a stand-in server that sends the result and only ends
   * the call a second later (the real server ends it at once, so a wrapper that returned at the
   * result usually got away with it). The wrapper must return after the status, not at the result.
   */
  @Test
  void extractDictionaryWaitsForTheStatusAfterTheResult() throws Exception {
    AtomicBoolean completed = new AtomicBoolean();
    AtomicBoolean cancelled = new AtomicBoolean();
    DictionaryServiceGrpc.DictionaryServiceImplBase slowToEnd =
        new DictionaryServiceGrpc.DictionaryServiceImplBase() {
          @Override
          public void extractDictionary(
              ExtractDictionaryRequest request, StreamObserver<ExtractDictionaryResponse> replies) {
            replies.onNext(
                ExtractDictionaryResponse.newBuilder()
                    .setProgress(ExtractionProgress.newBuilder().setItemsDone(1))
                    .build());
            replies.onNext(
                ExtractDictionaryResponse.newBuilder()
                    .setResult(
                        ExtractionResult.newBuilder()
                            .addDictionaries(Dictionary.newBuilder().setId("dict-late")))
                    .build());
            try {
              Thread.sleep(1000);
            } catch (InterruptedException interrupted) {
              Thread.currentThread().interrupt();
            }
            cancelled.set(io.grpc.Context.current().isCancelled());
            completed.set(true);
            replies.onCompleted();
          }
        };
    Server server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(slowToEnd)
            .build()
            .start();
    try (ChunkscopeClient client =
        ChunkscopeClient.builder().address("127.0.0.1:" + server.getPort()).token("").build()) {
      List<Dictionary> stored = client.extractDictionary(request("fake"));
      assertEquals(List.of("dict-late"), stored.stream().map(Dictionary::getId).toList());
      assertTrue(completed.get(), "extractDictionary returned before the call ended");
      assertFalse(cancelled.get(), "the call was cancelled after its result");
    } finally {
      server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }
}
