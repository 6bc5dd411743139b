package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.chunkscope.v1.AnalysisProgress;
import dev.chunkscope.v1.CompareRepresentationsRequest;
import dev.chunkscope.v1.CompareRepresentationsResponse;
import dev.chunkscope.v1.CompareRepresentationsResult;
import dev.chunkscope.v1.ConnectionCostRequest;
import dev.chunkscope.v1.ConnectionCostResponse;
import dev.chunkscope.v1.DenseLayer;
import dev.chunkscope.v1.DenseNetwork;
import dev.chunkscope.v1.Dtype;
import dev.chunkscope.v1.LayerGroup;
import dev.chunkscope.v1.LayerSimilarityRequest;
import dev.chunkscope.v1.LayerSimilarityResult;
import dev.chunkscope.v1.Measure;
import dev.chunkscope.v1.MeasureResult;
import dev.chunkscope.v1.NamedStates;
import dev.chunkscope.v1.NamedStatesList;
import dev.chunkscope.v1.NetworkSource;
import dev.chunkscope.v1.OptimizeNeuronLayoutRequest;
import dev.chunkscope.v1.OptimizeNeuronLayoutResponse;
import dev.chunkscope.v1.StateSet;
import dev.chunkscope.v1.Tensor;
import io.grpc.Status;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/** AnalysisService through the wrapper, with states sent inline (known answers). */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class AnalysisTest {
  private ChunkscopeClient client;

  @BeforeAll
  void connect() {
    client = Fixture.client();
  }

  @AfterAll
  void close() {
    if (client != null) {
      client.close();
    }
  }

  /** A float64 tensor of a [rows, columns] matrix, little-endian row-major. */
  static Tensor tensor(double[][] rows) {
    ByteBuffer data =
        ByteBuffer.allocate(rows.length * rows[0].length * 8).order(ByteOrder.LITTLE_ENDIAN);
    for (double[] row : rows) {
      for (double v : row) {
        data.putDouble(v);
      }
    }
    return Tensor.newBuilder()
        .setDtype(Dtype.DTYPE_FLOAT64)
        .addShape(rows.length)
        .addShape(rows[0].length)
        .setData(ByteString.copyFrom(data.array()))
        .build();
  }

  static double[][] gaussian(int rows, int columns, long seed) {
    Random random = new Random(seed);
    double[][] m = new double[rows][columns];
    for (double[] row : m) {
      for (int j = 0; j < columns; j++) {
        row[j] = random.nextGaussian() * (columns - j); // unequal spreads
      }
    }
    return m;
  }

  /** 2.5 * x, columns permuted and one negated (an orthogonal map), shifted by -3. */
  static double[][] rotatedCopy(double[][] x) {
    double[][] copy = new double[x.length][];
    for (int i = 0; i < x.length; i++) {
      double[] r = x[i];
      copy[i] = new double[] {2.5 * r[2] - 3, -2.5 * r[0] - 3, 2.5 * r[3] - 3, 2.5 * r[1] - 3};
    }
    return copy;
  }

  static final double[][] REP = gaussian(40, 4, 0);

  static CompareRepresentationsRequest compare(double[][] a, double[][] b, Measure... measures) {
    return CompareRepresentationsRequest.newBuilder()
        .setA(StateSet.newBuilder().setTensor(tensor(a)))
        .setB(StateSet.newBuilder().setTensor(tensor(b)))
        .addAllMeasures(List.of(measures))
        .build();
  }

  @Test
  void aRotatedScaledShiftedCopyHasCka1AndProcrustes0() {
    List<AnalysisProgress> progress = new ArrayList<>();
    CompareRepresentationsResult result =
        client.compareRepresentations(
            compare(REP, rotatedCopy(REP), Measure.MEASURE_LINEAR_CKA, Measure.MEASURE_PROCRUSTES),
            progress::add);
    assertEquals(2, result.getResultsCount());
    MeasureResult cka = result.getResults(0);
    MeasureResult procrustes = result.getResults(1);
    assertEquals(Measure.MEASURE_LINEAR_CKA, cka.getMeasure());
    assertEquals(1.0, cka.getValue(), 1e-9);
    assertEquals(Measure.MEASURE_PROCRUSTES, procrustes.getMeasure());
    assertEquals(0.0, procrustes.getValue(), 1e-6);
    assertFalse(cka.getDefinition().isEmpty());
    assertEquals(List.of(40L, 4L), result.getShapeAList());

    // Unrelated states are far from it.
    CompareRepresentationsResult unrelated =
        client.compareRepresentations(compare(REP, gaussian(40, 4, 1), Measure.MEASURE_LINEAR_CKA));
    assertTrue(unrelated.getResults(0).getValue() < 0.9, unrelated.toString());

    // The raw stream: progress messages, then the result.
    try (ResponseStream<CompareRepresentationsResponse> stream =
        client.compareRepresentationsStream(compare(REP, REP, Measure.MEASURE_LINEAR_CKA))) {
      List<CompareRepresentationsResponse> messages = stream.stream().toList();
      assertTrue(messages.get(messages.size() - 1).hasResult());
      assertTrue(
          messages.subList(0, messages.size() - 1).stream()
              .allMatch(CompareRepresentationsResponse::hasProgress));
    }
  }

  @Test
  void aRequestWithoutMeasuresNamesTheField() {
    ChunkscopeException error =
        assertThrows(
            ChunkscopeException.class, () -> client.compareRepresentations(compare(REP, REP)));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code(), error.getMessage());
    assertFalse(error.fieldViolations().isEmpty());
    assertTrue(error.fieldViolations().get(0).field().startsWith("measures"), error.getMessage());
  }

  @Test
  void layerSimilarityOfInlineLayers() {
    LayerSimilarityRequest request =
        LayerSimilarityRequest.newBuilder()
            .setLayers(
                NamedStatesList.newBuilder()
                    .addLayers(NamedStates.newBuilder().setName("a").setStates(tensor(REP)))
                    .addLayers(
                        NamedStates.newBuilder().setName("b").setStates(tensor(rotatedCopy(REP))))
                    .addLayers(
                        NamedStates.newBuilder()
                            .setName("c")
                            .setStates(tensor(gaussian(40, 4, 2)))))
            .setMeasure(Measure.MEASURE_LINEAR_CKA)
            .build();
    LayerSimilarityResult result = client.layerSimilarity(request);
    assertEquals(List.of("a", "b", "c"), result.getLayersList());
    assertEquals(9, result.getMatrixCount());
    for (int i = 0; i < 3; i++) {
      assertEquals(1.0, result.getMatrix(i * 3 + i), 1e-9);
    }
    assertEquals(1.0, result.getMatrix(1), 1e-9); // a ~ b
    assertEquals(result.getMatrix(2), result.getMatrix(6), 1e-12); // symmetric
    TreeSet<Integer> grouped = new TreeSet<>();
    for (LayerGroup group : result.getGroupsList()) {
      grouped.addAll(group.getLayersList());
    }
    assertEquals(List.of(0, 1, 2), List.copyOf(grouped), "every layer is in a group");
  }

  static DenseNetwork network() {
    return DenseNetwork.newBuilder()
        .addLayers(
            DenseLayer.newBuilder()
                .setWeight(tensor(new double[][] {{0.1, 2.0}, {1.5, -0.2}, {-0.3, 0.05}}))
                .setBias(
                    Tensor.newBuilder()
                        .setDtype(Dtype.DTYPE_FLOAT64)
                        .addShape(3)
                        .setData(
                            ByteString.copyFrom(
                                ByteBuffer.allocate(24)
                                    .order(ByteOrder.LITTLE_ENDIAN)
                                    .putDouble(0.1)
                                    .putDouble(-0.1)
                                    .putDouble(0.2)
                                    .array()))))
        .addLayers(DenseLayer.newBuilder().setWeight(tensor(new double[][] {{2.0, 0.01, -1.0}})))
        .build();
  }

  @Test
  void connectionCostAndALayoutThatLowersIt() {
    NetworkSource source = NetworkSource.newBuilder().setNetwork(network()).build();
    ConnectionCostResponse cost =
        client.connectionCost(ConnectionCostRequest.newBuilder().setNetwork(source).build());
    assertTrue(cost.getCost() > 0, cost.toString());
    assertFalse(cost.getDefinition().isEmpty());
    assertFalse(cost.getTermsList().isEmpty());

    OptimizeNeuronLayoutResponse layout =
        client.optimizeNeuronLayout(
            OptimizeNeuronLayoutRequest.newBuilder().setNetwork(source).build());
    assertEquals(cost.getCost(), layout.getCostBefore(), 1e-9);
    assertTrue(layout.getCostAfter() <= layout.getCostBefore() + 1e-12, layout.toString());
    assertTrue(layout.getMaxOutputDifference() < 1e-6, layout.toString());
  }
}
