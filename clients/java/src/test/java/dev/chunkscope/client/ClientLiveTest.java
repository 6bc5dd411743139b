package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.chunkscope.v1.Arm;
import dev.chunkscope.v1.ChunkEntry;
import dev.chunkscope.v1.ChunkMethod;
import dev.chunkscope.v1.ChunkRef;
import dev.chunkscope.v1.ChunkSummary;
import dev.chunkscope.v1.ConceptWords;
import dev.chunkscope.v1.Corpus;
import dev.chunkscope.v1.DetectInput;
import dev.chunkscope.v1.DetectResponse;
import dev.chunkscope.v1.DetectResult;
import dev.chunkscope.v1.DetectionConfig;
import dev.chunkscope.v1.Dictionary;
import dev.chunkscope.v1.ExtractDictionaryRequest;
import dev.chunkscope.v1.ExtractDictionaryResponse;
import dev.chunkscope.v1.ExtractionPhase;
import dev.chunkscope.v1.ExtractionProgress;
import dev.chunkscope.v1.GenerateRequest;
import dev.chunkscope.v1.GenerateResponse;
import dev.chunkscope.v1.HookPoint;
import dev.chunkscope.v1.Intervention;
import dev.chunkscope.v1.InterventionMode;
import dev.chunkscope.v1.Model;
import dev.chunkscope.v1.ModelRef;
import dev.chunkscope.v1.ModelState;
import dev.chunkscope.v1.PerturbRequest;
import dev.chunkscope.v1.PerturbResponse;
import dev.chunkscope.v1.PopulationAveragingParams;
import dev.chunkscope.v1.Positions;
import dev.chunkscope.v1.SamplingParams;
import dev.chunkscope.v1.StreamDetectResponse;
import dev.chunkscope.v1.TextList;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Every RPC through the wrapper, against the live fixture. The suite registers its own copy of the
 * fixture model ("java-model"), extracts, exports, deletes and imports dictionaries on it, and
 * removes all of it at the end: the fixture's model and dictionary are only read.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClientLiveTest {
  static final String MODEL = "java-model";
  static final String TEXT = "On day 3 the cat slept near the window while the cake cooled.";

  private ChunkscopeClient client;
  private Dictionary extracted;

  @BeforeAll
  void connect() {
    client = Fixture.client();
    removeOwnState(); // a run that died half-way must not break this one
  }

  @AfterAll
  void cleanUp() {
    if (client != null) {
      removeOwnState();
      client.close();
    }
  }

  private void removeOwnState() {
    if (client.listModels().stream().noneMatch(m -> m.getName().equals(MODEL))) {
      return;
    }
    for (Dictionary d : client.listDictionaries(MODEL)) {
      client.deleteDictionary(d.getId());
    }
    client.unregisterModel(MODEL);
  }

  private static ExtractDictionaryRequest extraction(String model) {
    List<String> texts =
        IntStream.range(0, 14)
            .mapToObj(i -> "On day " + i + " the cat slept near the window while the cake cooled.")
            .toList();
    return ExtractDictionaryRequest.newBuilder()
        .setModel(ModelRef.newBuilder().setName(model))
        .addHookPoints(Fixture.hookPoint())
        .setCorpus(Corpus.newBuilder().setTexts(TextList.newBuilder().addAllTexts(texts)))
        .setPopulationAveraging(
            PopulationAveragingParams.newBuilder()
                .addConcepts(ConceptWords.newBuilder().setConcept("cat"))
                .addConcepts(ConceptWords.newBuilder().setConcept("cake"))
                .setNSamples(10)
                .setSeed(0))
        .setDescription("java client test")
        .build();
  }

  private static DetectionConfig fixtureConfig() {
    return DetectionConfig.newBuilder()
        .setModel(ModelRef.newBuilder().setName(Fixture.model()))
        .addDictionaryIds(Fixture.dictionary())
        .build();
  }

  private static GenerateRequest generation(int newTokens) {
    return GenerateRequest.newBuilder()
        .setModel(ModelRef.newBuilder().setName(Fixture.model()))
        .setPrompt(DetectInput.newBuilder().setText("The cat"))
        .addInterventions(
            Intervention.newBuilder()
                .setChunk(ChunkRef.newBuilder().setDictionaryId(Fixture.dictionary()).setEntryId(0))
                .setMode(InterventionMode.INTERVENTION_MODE_PROJECT_OUT)
                .setPositions(Positions.newBuilder().setAllPrompt(true).setGenerated(true)))
        .setSampling(SamplingParams.newBuilder().setMaxNewTokens(newTokens))
        .setControl(true)
        .build();
  }

  private static Map<String, ChunkSummary> byLabel(DetectResult result) {
    Map<String, ChunkSummary> summaries = new java.util.HashMap<>();
    for (ChunkSummary s : result.getSummariesList()) {
      summaries.put(s.getLabel(), s);
    }
    return summaries;
  }

  // ----- health and models ------------------------------------------------------------------

  @Test
  @Order(1)
  void healthIsServing() {
    assertEquals(ServingStatus.SERVING, client.health());
  }

  @Test
  @Order(2)
  void registerGetListAndHookPoints() {
    Model registered = client.registerModel(MODEL, Fixture.env("MODEL_SOURCE"), true);
    assertEquals(MODEL, registered.getName());
    assertEquals(ModelState.MODEL_STATE_READY, registered.getState());
    // The same weights as the fixture model, so the same content hash.
    assertEquals(Fixture.env("CONTENT_HASH"), registered.getContentHash());

    Model fetched = client.getModel(MODEL);
    assertEquals(registered.getContentHash(), fetched.getContentHash());
    assertEquals("llama", fetched.getArchitecture());
    assertTrue(fetched.getNumBlocks() >= 2, "num_blocks " + fetched.getNumBlocks());

    List<String> names = client.listModels().stream().map(Model::getName).toList();
    assertTrue(names.contains(MODEL) && names.contains(Fixture.model()), names.toString());
    assertEquals(names.stream().sorted().toList(), names, "ListModels is in name order");

    List<HookPoint> hooks = client.listHookPoints(MODEL);
    List<String> hookNames = hooks.stream().map(HookPoint::getName).toList();
    assertTrue(hookNames.contains(Fixture.hookPoint()), hookNames.toString());
    ModelRef pinned =
        ModelRef.newBuilder().setName(MODEL).setContentHash(fetched.getContentHash()).build();
    assertEquals(hooks, client.listHookPoints(pinned));
  }

  // ----- dictionaries -------------------------------------------------------------------------

  @Test
  @Order(3)
  void extractWithProgressThenGetAndList() {
    List<ExtractionProgress> progress = new ArrayList<>();
    List<Dictionary> stored = client.extractDictionary(extraction(MODEL), progress::add);
    assertEquals(1, stored.size());
    extracted = stored.get(0);
    assertEquals(MODEL, extracted.getModel().getName());
    assertEquals(Fixture.hookPoint(), extracted.getHookPoint());
    assertEquals(ChunkMethod.CHUNK_METHOD_POPULATION_AVERAGING, extracted.getMethod());
    assertEquals(
        List.of("cat", "cake"),
        extracted.getEntriesList().stream().map(ChunkEntry::getLabel).toList());
    assertFalse(progress.isEmpty(), "no progress messages");
    assertTrue(
        progress.stream().anyMatch(p -> p.getPhase() == ExtractionPhase.EXTRACTION_PHASE_CAPTURE),
        progress.toString());

    Dictionary fetched = client.getDictionary(extracted.getId());
    assertEquals(extracted.getId(), fetched.getId());
    assertEquals(extracted.getEntriesCount(), fetched.getEntriesCount());
    assertFalse(fetched.getEntries(0).hasPrototype(), "prototypes only when asked for");
    assertTrue(client.getDictionary(extracted.getId(), true).getEntries(0).hasPrototype());

    assertEquals(
        List.of(extracted.getId()),
        client.listDictionaries(MODEL).stream().map(Dictionary::getId).toList());
    List<String> everyId = client.listDictionaries().stream().map(Dictionary::getId).toList();
    assertTrue(
        everyId.containsAll(List.of(extracted.getId(), Fixture.dictionary())), everyId.toString());
  }

  @Test
  @Order(4)
  void theRawExtractionStreamEndsWithTheResult() {
    List<ExtractDictionaryResponse> messages;
    try (ResponseStream<ExtractDictionaryResponse> stream =
        client.extractDictionaryStream(extraction(MODEL))) {
      messages = stream.stream().toList();
    }
    ExtractDictionaryResponse last = messages.get(messages.size() - 1);
    assertTrue(last.hasResult());
    assertTrue(messages.subList(0, messages.size() - 1).stream().allMatch(m -> m.hasProgress()));
    Dictionary second = last.getResult().getDictionaries(0);
    assertNotEquals(extracted.getId(), second.getId());
    assertEquals(second.getId(), client.deleteDictionary(second.getId()).getId());
  }

  @Test
  @Order(5)
  void exportDeleteImportGivesTheSameDictionary() {
    Dictionary before = client.getDictionary(extracted.getId(), true);
    byte[] archive = client.exportDictionary(before.getId());
    assertTrue(archive.length > 512, "archive of " + archive.length + " bytes");
    // A tar archive: "ustar" at offset 257 of the first header.
    assertEquals("ustar", new String(archive, 257, 5, StandardCharsets.US_ASCII));
    ByteArrayOutputStream streamed = new ByteArrayOutputStream();
    assertEquals(archive.length, client.exportDictionary(before.getId(), streamed));
    assertArrayEquals(archive, streamed.toByteArray());

    assertEquals(before.getId(), client.deleteDictionary(before.getId()).getId());
    ChunkscopeException gone =
        assertThrows(ChunkscopeException.class, () -> client.getDictionary(before.getId()));
    assertEquals(Status.Code.NOT_FOUND, gone.code());

    Dictionary imported = client.importDictionary(archive);
    assertEquals(before.getId(), imported.getId());
    Dictionary after = client.getDictionary(imported.getId(), true);
    assertEquals(before, after);

    // Importing what is already stored is refused; the stream variant reaches the same check.
    ChunkscopeException again =
        assertThrows(
            ChunkscopeException.class,
            () -> client.importDictionary(new ByteArrayInputStream(archive), ""));
    assertEquals(Status.Code.ALREADY_EXISTS, again.code(), again.getMessage());
  }

  @Test
  @Order(6)
  void aCorruptedImportIsRefused() throws Exception {
    byte[] archive = client.exportDictionary(extracted.getId());
    String digest =
        "sha256:"
            + java.util.HexFormat.of()
                .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(archive));
    byte[] corrupt = Arrays.copyOf(archive, archive.length);
    corrupt[corrupt.length / 2] ^= 0x55;
    // The sha256 of the real archive, sent with corrupted bytes: the server's check catches it.
    ChunkscopeException refused =
        assertThrows(
            ChunkscopeException.class,
            () -> client.importDictionary(new ByteArrayInputStream(corrupt), digest));
    assertEquals(Status.Code.INVALID_ARGUMENT, refused.code(), refused.getMessage());
    assertEquals("sha256", refused.fieldViolations().get(0).field());
    // No bytes at all.
    ChunkscopeException empty =
        assertThrows(ChunkscopeException.class, () -> client.importDictionary(new byte[0]));
    assertEquals(Status.Code.INVALID_ARGUMENT, empty.code(), empty.getMessage());
    assertEquals("data", empty.fieldViolations().get(0).field());
  }

  // ----- detection ----------------------------------------------------------------------------

  @Test
  @Order(7)
  void detectFindsTheFixtureConcepts() {
    DetectResponse response = client.detect(fixtureConfig(), TEXT, "A plain sentence.");
    assertEquals(2, response.getResultsCount());
    DetectResult result = response.getResults(0);
    assertEquals(result.getNTokens(), result.getTokensCount());
    Map<String, ChunkSummary> summaries = byLabel(result);
    assertTrue(summaries.get("cat").getFired(), summaries.toString());
    assertTrue(summaries.get("cake").getFired(), summaries.toString());
    int catAt = summaries.get("cat").getFirstPosition();
    assertTrue(
        result.getTokens(catAt).getMatchesList().stream().anyMatch(m -> m.getLabel().equals("cat")),
        "the first cat position has a cat match");
  }

  @Test
  @Order(8)
  void streamDetectAnswersEachInputInOrder() {
    DetectionConfig config = fixtureConfig().toBuilder().setPositivesOnly(true).build();
    List<StreamDetectResponse> replies = new ArrayList<>();
    try (StreamDetectSession session = client.streamDetect(config)) {
      session.send("On day 3 the cat slept");
      session.sendContinuation(" while the cake cooled.");
      session.send("Nothing to see here.");
      session.complete();
      session.forEach(replies::add);
    }
    assertEquals(
        List.of(0L, 1L, 2L), replies.stream().map(StreamDetectResponse::getSequence).toList());
    assertTrue(byLabel(replies.get(0).getResult()).get("cat").getFired());
    // positives_only: only tokens with a match are listed, each with one.
    assertTrue(
        replies.stream()
            .flatMap(r -> r.getResult().getTokensList().stream())
            .allMatch(t -> t.getMatchesCount() > 0));
    // The continuation's positions count from the start of the first segment.
    int firstLength = replies.get(0).getResult().getNTokens();
    assertTrue(
        byLabel(replies.get(1).getResult()).values().stream()
            .allMatch(s -> s.getFirstPosition() == -1 || s.getFirstPosition() >= firstLength),
        replies.get(1).toString());
    // The third input starts afresh: the whole text alone gives the same result as Detect.
    DetectResult alone = client.detect(config, "Nothing to see here.").getResults(0);
    assertEquals(alone, replies.get(2).getResult());

    // One input at a time, with the reply read before the next input.
    try (StreamDetectSession session = client.streamDetect(config)) {
      StreamDetectResponse first = session.detect(TEXT);
      StreamDetectResponse second = session.detect(TEXT);
      assertEquals(0, first.getSequence());
      assertEquals(1, second.getSequence());
      assertEquals(first.getResult(), second.getResult());
    }
  }

  @Test
  @Order(9)
  void streamDetectErrorsSurfaceWhileReading() {
    DetectionConfig config =
        fixtureConfig().toBuilder()
            .clearDictionaryIds()
            .addDictionaryIds("dict-000000000000")
            .build();
    try (StreamDetectSession session = client.streamDetect(config)) {
      session.send(TEXT);
      ChunkscopeException error =
          assertThrows(ChunkscopeException.class, () -> session.iterator().hasNext());
      assertEquals(Status.Code.NOT_FOUND, error.code());
      assertEquals("DICTIONARY_NOT_FOUND", error.reason());
    }
  }

  // ----- perturbation -------------------------------------------------------------------------

  @Test
  @Order(10)
  void perturbReportsBeforeAndAfter() {
    PerturbResponse response =
        client.perturb(
            PerturbRequest.newBuilder()
                .setModel(ModelRef.newBuilder().setName(Fixture.model()))
                .setInput(DetectInput.newBuilder().setText("The window and the"))
                .addInterventions(
                    Intervention.newBuilder()
                        .setChunk(
                            ChunkRef.newBuilder()
                                .setDictionaryId(Fixture.dictionary())
                                .setEntryId(0))
                        .setMode(InterventionMode.INTERVENTION_MODE_ACTIVATE)
                        .setPositions(Positions.newBuilder().addIndices(-1)))
                .addTargetTokens(" the")
                .setTopK(3)
                .build());
    assertEquals(1, response.getTargetsBeforeCount());
    assertEquals(1, response.getTargetsAfterCount());
    assertEquals(3, response.getTopBeforeCount());
    assertEquals(3, response.getTopAfterCount());
    assertTrue(response.getKlDivergence() >= 0);
    assertTrue(response.getApplied() >= 1, "applied " + response.getApplied());
  }

  @Test
  @Order(11)
  void generateStreamsEveryStepOfBothArms() {
    Map<Arm, List<GenerateResponse>> byArm = new EnumMap<>(Arm.class);
    try (ResponseStream<GenerateResponse> steps = client.generate(generation(5))) {
      for (GenerateResponse step : steps) {
        byArm.computeIfAbsent(step.getArm(), arm -> new ArrayList<>()).add(step);
      }
    }
    assertEquals(java.util.Set.of(Arm.ARM_PERTURBED, Arm.ARM_CONTROL), byArm.keySet());
    for (List<GenerateResponse> arm : byArm.values()) {
      GenerateResponse done = arm.get(arm.size() - 1);
      assertTrue(done.getDone());
      assertTrue(arm.subList(0, arm.size() - 1).stream().noneMatch(GenerateResponse::getDone));
      List<Integer> steps =
          arm.stream().filter(s -> !s.getDone()).map(GenerateResponse::getStep).toList();
      assertEquals(List.of(0, 1, 2, 3, 4), steps);
    }
    // Greedy decoding is deterministic: the convenience gives the same continuations.
    Map<Arm, String> texts = client.generateText(generation(5));
    assertEquals(byArm.get(Arm.ARM_CONTROL).get(5).getText(), texts.get(Arm.ARM_CONTROL));
    assertEquals(byArm.get(Arm.ARM_PERTURBED).get(5).getText(), texts.get(Arm.ARM_PERTURBED));
  }

  @Test
  @Order(12)
  void closingAStreamEarlyCancelsIt() {
    long started = System.nanoTime();
    try (ResponseStream<GenerateResponse> steps = client.generate(generation(512))) {
      GenerateResponse first = steps.iterator().next();
      assertEquals(0, first.getStep());
    }
    // The server is still fine, and the 512 tokens were not waited for.
    assertEquals(ServingStatus.SERVING, client.health());
    assertTrue(Duration.ofNanos(System.nanoTime() - started).compareTo(Duration.ofSeconds(30)) < 0);
  }

  // ----- errors, deadlines, limits ------------------------------------------------------------

  @Test
  @Order(13)
  void unknownModelIsNotFoundWithReason() {
    ChunkscopeException error =
        assertThrows(ChunkscopeException.class, () -> client.getModel("no-such-model"));
    assertEquals(Status.Code.NOT_FOUND, error.code());
    assertEquals(
        "no model named 'no-such-model' is registered; ListModels shows the registered ones",
        error.description());
    assertEquals("MODEL_NOT_FOUND", error.reason());
    assertEquals("NOT_FOUND: " + error.description(), error.getMessage());
    assertTrue(error.fieldViolations().isEmpty());
  }

  @Test
  @Order(14)
  void invalidArgumentsNameTheField() {
    ChunkscopeException error =
        assertThrows(
            ChunkscopeException.class,
            () -> client.registerModel("Bad Name!", Fixture.env("MODEL_SOURCE"), false));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertEquals(1, error.fieldViolations().size(), error.fieldViolations().toString());
    assertEquals("name", error.fieldViolations().get(0).field());
    assertTrue(error.fieldViolations().get(0).description().contains("Bad Name!"));

    // A streaming call that fails: the error surfaces while reading.
    ExtractDictionaryRequest noHooks =
        extraction(Fixture.model()).toBuilder().clearHookPoints().build();
    try (ResponseStream<ExtractDictionaryResponse> stream =
        client.extractDictionaryStream(noHooks)) {
      ChunkscopeException streamed =
          assertThrows(ChunkscopeException.class, () -> stream.iterator().hasNext());
      assertEquals(Status.Code.INVALID_ARGUMENT, streamed.code());
      assertEquals(
          List.of(
              new ChunkscopeException.FieldViolation(
                  "hook_points", "required: at least one hook point")),
          streamed.fieldViolations());
    }
  }

  @Test
  @Order(15)
  void aShortDeadlineExpires() {
    ChunkscopeClient hurried = client.withDeadline(Duration.ofMillis(50));
    long started = System.nanoTime();
    ChunkscopeException error =
        assertThrows(ChunkscopeException.class, () -> hurried.generateText(generation(512)));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, error.code(), error.getMessage());
    assertTrue(Duration.ofNanos(System.nanoTime() - started).compareTo(Duration.ofSeconds(10)) < 0);
    hurried.close(); // a view: the shared channel stays open
    assertEquals(ServingStatus.SERVING, client.health());
  }

  @Test
  @Order(16)
  void theReceiveLimitIsConfigurableAndDefaultsHighEnough() {
    Dictionary full = client.getDictionary(Fixture.dictionary(), true);
    assertTrue(full.getSerializedSize() > 1024);
    try (ChunkscopeClient small =
        ChunkscopeClient.builder()
            .address(Fixture.address())
            .token(Fixture.token())
            .maxInboundMessageSize(1024)
            .build()) {
      ChunkscopeException error =
          assertThrows(
              ChunkscopeException.class, () -> small.getDictionary(Fixture.dictionary(), true));
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, error.code(), error.getMessage());
    }
  }

  @Test
  @Order(17)
  void callsWithoutTheTokenAreRefusedWhenAuthIsOn() {
    assumeFalse(Fixture.token().isEmpty(), "the fixture runs without auth");
    try (ChunkscopeClient anonymous =
        ChunkscopeClient.builder().address(Fixture.address()).token("").build()) {
      ChunkscopeException error = assertThrows(ChunkscopeException.class, anonymous::listModels);
      assertEquals(Status.Code.UNAUTHENTICATED, error.code(), error.getMessage());
    }
  }

  @Test
  @Order(18)
  void aMonitorKeyMayDetectButNotRegister() {
    String monitor = System.getenv("CHUNKSCOPE_TEST_MONITOR_TOKEN");
    assumeFalse(monitor == null || monitor.isEmpty(), "the fixture has no monitor key");
    try (ChunkscopeClient watcher =
        ChunkscopeClient.builder().address(Fixture.address()).token(monitor).build()) {
      assertEquals(2, watcher.detect(fixtureConfig(), TEXT).getResults(0).getSummariesCount());
      ChunkscopeException error =
          assertThrows(
              ChunkscopeException.class,
              () -> watcher.registerModel("java-denied", Fixture.env("MODEL_SOURCE"), false));
      assertEquals(Status.Code.PERMISSION_DENIED, error.code(), error.getMessage());
    }
  }

  // ----- last: unregister ---------------------------------------------------------------------

  @Test
  @Order(100)
  void unregisterRemovesTheModel() {
    for (Dictionary d : client.listDictionaries(MODEL)) {
      client.deleteDictionary(d.getId());
    }
    assertEquals(MODEL, client.unregisterModel(MODEL).getName());
    ChunkscopeException error =
        assertThrows(ChunkscopeException.class, () -> client.getModel(MODEL));
    assertEquals(Status.Code.NOT_FOUND, error.code());
  }
}
