package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.chunkscope.v1.ChunkRef;
import dev.chunkscope.v1.ConnectionCostRequest;
import dev.chunkscope.v1.DetectInput;
import dev.chunkscope.v1.DetectionConfig;
import dev.chunkscope.v1.GenerateRequest;
import dev.chunkscope.v1.Intervention;
import dev.chunkscope.v1.InterventionMode;
import dev.chunkscope.v1.LayerSimilarityRequest;
import dev.chunkscope.v1.Measure;
import dev.chunkscope.v1.ModelRef;
import dev.chunkscope.v1.NamedStates;
import dev.chunkscope.v1.NamedStatesList;
import dev.chunkscope.v1.NetworkSource;
import dev.chunkscope.v1.OptimizeNeuronLayoutRequest;
import dev.chunkscope.v1.OptimizeNeuronLayoutResponse;
import dev.chunkscope.v1.PerturbRequest;
import dev.chunkscope.v1.Positions;
import dev.chunkscope.v1.SamplingParams;
import io.grpc.health.v1.HealthCheckResponse;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The client against the fixture's two replicas ({@code CHUNKSCOPE_TEST_ADDRESSES}): round_robin
 * reaches both, and a dead address in the target costs no idempotent call.
 */
class ReplicasTest {
  private static final String TEXT =
      "On day 3 the cat slept near the window while the cake cooled.";

  /** grpc_server_handled_total of one method on one server, every code together. */
  private static double handled(String metricsUrl, String method) throws Exception {
    String text =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(metricsUrl)).build(),
                HttpResponse.BodyHandlers.ofString())
            .body();
    double total = 0;
    for (String line : text.split("\n")) {
      if (line.startsWith("grpc_server_handled_total{")
          && line.contains("grpc_method=\"" + method + "\"")) {
        total += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return total;
  }

  private static ChunkscopeClient client(String target) {
    return ChunkscopeClient.builder().address(target).token(Fixture.token()).build();
  }

  private static DetectionConfig detection() {
    return DetectionConfig.newBuilder()
        .setModel(ModelRef.newBuilder().setName(Fixture.model()))
        .addDictionaryIds(Fixture.dictionary())
        .setSummaryOnly(true)
        .build();
  }

  /** How many calls of `method` each replica served while `calls` ran n times on `target`. */
  private static double[] servedBy(
      String target, String method, int n, Consumer<ChunkscopeClient> calls) throws Exception {
    String[] urls = Fixture.env("METRICS_URLS").split(",");
    double[] served = new double[urls.length];
    for (int i = 0; i < urls.length; i++) {
      served[i] = -handled(urls[i], method);
    }
    try (ChunkscopeClient client = client(target)) {
      for (int i = 0; i < n; i++) {
        calls.accept(client);
      }
    }
    for (int i = 0; i < urls.length; i++) {
      served[i] += handled(urls[i], method);
    }
    return served;
  }

  @Test
  void roundRobinReachesBothReplicas() throws Exception {
    double[] served =
        servedBy(
            Fixture.env("ADDRESSES"),
            "Detect",
            12,
            client ->
                assertEquals(
                    "cat",
                    client.detect(detection(), TEXT).getResults(0).getSummaries(0).getLabel()));
    assertEquals(12.0, served[0] + served[1], () -> List.of(served[0], served[1]).toString());
    assertTrue(served[0] > 0 && served[1] > 0, () -> List.of(served[0], served[1]).toString());
  }

  @Test
  void aListOfHostnamesReachesBothReplicas() throws Exception {
    String target = Fixture.env("ADDRESSES").replace("127.0.0.1", "localhost");
    double[] served =
        servedBy(
            target,
            "GetModel",
            8,
            client -> assertEquals(Fixture.model(), client.getModel(Fixture.model()).getName()));
    assertEquals(8.0, served[0] + served[1], () -> List.of(served[0], served[1]).toString());
    assertTrue(served[0] > 0 && served[1] > 0, () -> List.of(served[0], served[1]).toString());
  }

  @Test
  void aDnsTargetWorks() {
    String port = Fixture.address().substring(Fixture.address().lastIndexOf(':') + 1);
    try (ChunkscopeClient client = client("dns:///localhost:" + port)) {
      assertEquals(Fixture.model(), client.getModel(Fixture.model()).getName());
    }
  }

  @Test
  void everyIdempotentCallSucceedsPastADeadAddress() {
    String model = Fixture.model();
    String dictionary = Fixture.dictionary();
    ModelRef ref = ModelRef.newBuilder().setName(model).build();
    NetworkSource network = NetworkSource.newBuilder().setNetwork(AnalysisTest.network()).build();
    try (ChunkscopeClient client = client(Fixture.env("DEAD_ADDRESS") + "," + Fixture.address())) {
      for (int round = 0; round < 3; round++) { // more than once: round_robin would reach both
        assertEquals(HealthCheckResponse.ServingStatus.SERVING, client.health());
        assertEquals(model, client.getModel(model).getName());
        assertTrue(client.listModels().stream().anyMatch(m -> m.getName().equals(model)));
        assertTrue(
            client.listHookPoints(model).stream()
                .anyMatch(p -> p.getName().equals(Fixture.hookPoint())));
        assertEquals(dictionary, client.getDictionary(dictionary).getId());
        assertTrue(
            client.listDictionaries(model).stream().anyMatch(d -> d.getId().equals(dictionary)));
        assertTrue(client.exportDictionary(dictionary, OutputStream.nullOutputStream()) > 0);
        assertEquals(
            "cat", client.detect(detection(), TEXT).getResults(0).getSummaries(0).getLabel());
        assertEquals(
            3,
            client
                .perturb(
                    PerturbRequest.newBuilder()
                        .setModel(ref)
                        .setInput(DetectInput.newBuilder().setText("The window and the"))
                        .addInterventions(
                            Intervention.newBuilder()
                                .setChunk(
                                    ChunkRef.newBuilder().setDictionaryId(dictionary).setEntryId(0))
                                .setMode(InterventionMode.INTERVENTION_MODE_ACTIVATE)
                                .setPositions(Positions.newBuilder().addIndices(-1)))
                        .setTopK(3)
                        .build())
                .getTopBeforeCount());
        assertEquals(
            1,
            client
                .generateText(
                    GenerateRequest.newBuilder()
                        .setModel(ref)
                        .setPrompt(DetectInput.newBuilder().setText("The cat"))
                        .setSampling(SamplingParams.newBuilder().setMaxNewTokens(4))
                        .build())
                .size());
        assertEquals(
            1.0,
            client
                .compareRepresentations(
                    AnalysisTest.compare(
                        AnalysisTest.REP, AnalysisTest.REP, Measure.MEASURE_LINEAR_CKA))
                .getResults(0)
                .getValue(),
            1e-6);
        assertEquals(
            2,
            client
                .layerSimilarity(
                    LayerSimilarityRequest.newBuilder()
                        .setLayers(
                            NamedStatesList.newBuilder()
                                .addLayers(
                                    NamedStates.newBuilder()
                                        .setName("a")
                                        .setStates(AnalysisTest.tensor(AnalysisTest.REP)))
                                .addLayers(
                                    NamedStates.newBuilder()
                                        .setName("b")
                                        .setStates(AnalysisTest.tensor(AnalysisTest.REP))))
                        .setMeasure(Measure.MEASURE_LINEAR_CKA)
                        .build())
                .getLayersCount());
        assertTrue(
            client
                    .connectionCost(ConnectionCostRequest.newBuilder().setNetwork(network).build())
                    .getCost()
                > 0);
        OptimizeNeuronLayoutResponse layout =
            client.optimizeNeuronLayout(
                OptimizeNeuronLayoutRequest.newBuilder().setNetwork(network).build());
        assertTrue(layout.getCostAfter() <= layout.getCostBefore() + 1e-9, layout::toString);
      }
    }
  }
}
