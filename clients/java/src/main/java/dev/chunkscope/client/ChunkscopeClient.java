package dev.chunkscope.client;

import com.google.protobuf.ByteString;
import dev.chunkscope.v1.AnalysisProgress;
import dev.chunkscope.v1.AnalysisServiceGrpc;
import dev.chunkscope.v1.Arm;
import dev.chunkscope.v1.CompareRepresentationsRequest;
import dev.chunkscope.v1.CompareRepresentationsResponse;
import dev.chunkscope.v1.CompareRepresentationsResult;
import dev.chunkscope.v1.ConnectionCostRequest;
import dev.chunkscope.v1.ConnectionCostResponse;
import dev.chunkscope.v1.DeleteDictionaryRequest;
import dev.chunkscope.v1.DetectInput;
import dev.chunkscope.v1.DetectRequest;
import dev.chunkscope.v1.DetectResponse;
import dev.chunkscope.v1.DetectionConfig;
import dev.chunkscope.v1.DetectionServiceGrpc;
import dev.chunkscope.v1.Dictionary;
import dev.chunkscope.v1.DictionaryServiceGrpc;
import dev.chunkscope.v1.ExportDictionaryRequest;
import dev.chunkscope.v1.ExportDictionaryResponse;
import dev.chunkscope.v1.ExtractDictionaryRequest;
import dev.chunkscope.v1.ExtractDictionaryResponse;
import dev.chunkscope.v1.ExtractionProgress;
import dev.chunkscope.v1.GenerateRequest;
import dev.chunkscope.v1.GenerateResponse;
import dev.chunkscope.v1.GetDictionaryRequest;
import dev.chunkscope.v1.GetModelRequest;
import dev.chunkscope.v1.HookPoint;
import dev.chunkscope.v1.ImportDictionaryRequest;
import dev.chunkscope.v1.ImportDictionaryResponse;
import dev.chunkscope.v1.LayerSimilarityRequest;
import dev.chunkscope.v1.LayerSimilarityResponse;
import dev.chunkscope.v1.LayerSimilarityResult;
import dev.chunkscope.v1.ListDictionariesRequest;
import dev.chunkscope.v1.ListDictionariesResponse;
import dev.chunkscope.v1.ListHookPointsRequest;
import dev.chunkscope.v1.ListModelsRequest;
import dev.chunkscope.v1.ListModelsResponse;
import dev.chunkscope.v1.Model;
import dev.chunkscope.v1.ModelRef;
import dev.chunkscope.v1.ModelServiceGrpc;
import dev.chunkscope.v1.OptimizeNeuronLayoutRequest;
import dev.chunkscope.v1.OptimizeNeuronLayoutResponse;
import dev.chunkscope.v1.PageRequest;
import dev.chunkscope.v1.PerturbRequest;
import dev.chunkscope.v1.PerturbResponse;
import dev.chunkscope.v1.PerturbationServiceGrpc;
import dev.chunkscope.v1.RegisterModelRequest;
import dev.chunkscope.v1.UnregisterModelRequest;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.AbstractStub;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A connection to one chunkscope server, with blocking calls for every RPC.
 *
 * <p>Every call has a deadline: {@link Builder#defaultDeadline} (30 s) for quick calls, and longer
 * ones for the calls that do real work unless the default is longer still: 5 minutes for {@code
 * RegisterModel} with {@code wait}; 10 minutes for {@code Generate}, {@code
 * CompareRepresentations}, {@code LayerSimilarity} and {@code OptimizeNeuronLayout}; an hour for
 * {@code ExtractDictionary} and {@code StreamDetect}. {@link #withDeadline} gives a view of the
 * client whose calls all use one deadline. Replies up to 64 MiB are accepted (the server's default
 * limit; gRPC's own default of 4 MiB is too small for exports and large detections). Failures throw
 * {@link ChunkscopeException} with the status code and the server's error details.
 *
 * <pre>{@code
 * try (ChunkscopeClient client = ChunkscopeClient.builder().address("127.0.0.1:50051").build()) {
 *   for (Model model : client.listModels()) {
 *     System.out.println(model.getName() + " " + model.getState());
 *   }
 * }
 * }</pre>
 *
 * <p>Thread-safe: one client is meant to be shared. {@link #close()} shuts the channel down.
 */
public final class ChunkscopeClient implements AutoCloseable {
  /** The server's default {@code --max-message-bytes}. */
  public static final int DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

  /** The default deadline of quick calls. */
  public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(30);

  static final Duration REGISTER_WAIT_DEADLINE = Duration.ofMinutes(5);
  static final Duration GENERATE_DEADLINE = Duration.ofMinutes(10);
  static final Duration LONG_DEADLINE = Duration.ofHours(1);

  private static final int IMPORT_CHUNK_BYTES = 1 << 20;
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final ManagedChannel managedChannel;
  private final Channel channel;
  private final boolean ownsChannel;
  private final Duration defaultDeadline;

  /** When set ({@link #withDeadline}), the deadline of every call, long ones included. */
  private final Duration fixedDeadline;

  private ChunkscopeClient(
      ManagedChannel managedChannel,
      Channel channel,
      boolean ownsChannel,
      Duration defaultDeadline,
      Duration fixedDeadline) {
    this.managedChannel = managedChannel;
    this.channel = channel;
    this.ownsChannel = ownsChannel;
    this.defaultDeadline = defaultDeadline;
    this.fixedDeadline = fixedDeadline;
  }

  /** A builder; {@code builder().build()} connects to {@code 127.0.0.1:50051} in plaintext. */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * A view of this client whose calls all have {@code deadline} (quick and long calls alike). It
   * shares the connection: closing the view does nothing, closing this client closes both.
   */
  public ChunkscopeClient withDeadline(Duration deadline) {
    requirePositive(deadline, "deadline");
    return new ChunkscopeClient(managedChannel, channel, false, defaultDeadline, deadline);
  }

  /**
   * The channel, with the bearer token attached to every call: for stubs of your own (e.g. {@code
   * DetectionServiceGrpc.newFutureStub(client.channel())}); such calls get no default deadline.
   */
  public Channel channel() {
    return channel;
  }

  /** Shuts the channel down, waiting up to 5 seconds for calls in flight. No-op on a view. */
  @Override
  public void close() {
    if (!ownsChannel) {
      return;
    }
    managedChannel.shutdown();
    try {
      if (!managedChannel.awaitTermination(5, TimeUnit.SECONDS)) {
        managedChannel.shutdownNow();
      }
    } catch (InterruptedException interrupted) {
      managedChannel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  // ----- deadlines and call plumbing ---------------------------------------------------------

  private Duration deadline(Duration longDefault) {
    if (fixedDeadline != null) {
      return fixedDeadline;
    }
    if (longDefault != null && longDefault.compareTo(defaultDeadline) > 0) {
      return longDefault;
    }
    return defaultDeadline;
  }

  private <S extends AbstractStub<S>> S stub(S stub, Duration longDefault) {
    return stub.withDeadlineAfter(deadline(longDefault).toNanos(), TimeUnit.NANOSECONDS);
  }

  private CallOptions options(Duration longDefault) {
    return CallOptions.DEFAULT.withDeadlineAfter(
        deadline(longDefault).toNanos(), TimeUnit.NANOSECONDS);
  }

  private ModelServiceGrpc.ModelServiceBlockingStub models(Duration longDefault) {
    return stub(ModelServiceGrpc.newBlockingStub(channel), longDefault);
  }

  private DictionaryServiceGrpc.DictionaryServiceBlockingStub dictionaries() {
    return stub(DictionaryServiceGrpc.newBlockingStub(channel), null);
  }

  /** A blocking call whose failure becomes a ChunkscopeException. */
  private static <T> T call(java.util.function.Supplier<T> rpc) {
    try {
      return rpc.get();
    } catch (RuntimeException error) {
      throw ChunkscopeException.from(error);
    }
  }

  /**
   * Reads a progress-then-result stream to its end and returns the first non-null value of {@code
   * resultOrNull}. Reading on after the result lets the call end with the server's OK status;
   * closing the stream at the result would cancel a call the server has already finished.
   */
  private static <M, R> R resultOf(ResponseStream<M> stream, Function<M, R> resultOrNull) {
    R result = null;
    try (stream) {
      for (M message : stream) {
        R value = resultOrNull.apply(message);
        if (result == null) {
          result = value;
        }
      }
    }
    if (result == null) {
      throw new ChunkscopeException(Status.Code.INTERNAL, "the stream ended without a result");
    }
    return result;
  }

  // ----- health --------------------------------------------------------------------------------

  /** The server's overall serving status ({@code grpc.health.v1.Health/Check}). */
  public HealthCheckResponse.ServingStatus health() {
    return health("");
  }

  /** The serving status of one service, e.g. {@code "chunkscope.v1.DetectionService"}. */
  public HealthCheckResponse.ServingStatus health(String service) {
    HealthCheckRequest request = HealthCheckRequest.newBuilder().setService(service).build();
    return call(() -> stub(HealthGrpc.newBlockingStub(channel), null).check(request)).getStatus();
  }

  // ----- ModelService ----------------------------------------------------------------------------

  /**
   * Registers a model from a path under one of the server's model roots (format inferred). With
   * {@code wait}, returns once it is loaded (READY) or fails with the load error; otherwise it
   * returns at once with the model LOADING.
   */
  public Model registerModel(String name, String sourcePath, boolean wait) {
    return registerModel(
        RegisterModelRequest.newBuilder()
            .setName(name)
            .setSourcePath(sourcePath)
            .setWait(wait)
            .build());
  }

  /** Registers a model (format, dtype, wait: see {@link RegisterModelRequest}). */
  public Model registerModel(RegisterModelRequest request) {
    Duration longDefault = request.getWait() ? REGISTER_WAIT_DEADLINE : null;
    return call(() -> models(longDefault).registerModel(request)).getModel();
  }

  /** A registered model. */
  public Model getModel(String name) {
    GetModelRequest request = GetModelRequest.newBuilder().setName(name).build();
    return call(() -> models(null).getModel(request)).getModel();
  }

  /** Every registered model, in name order (all pages). */
  public List<Model> listModels() {
    List<Model> all = new ArrayList<>();
    String token = "";
    do {
      ListModelsResponse page =
          listModels(
              ListModelsRequest.newBuilder()
                  .setPage(PageRequest.newBuilder().setPageToken(token))
                  .build());
      all.addAll(page.getModelsList());
      token = page.getPage().getNextPageToken();
    } while (!token.isEmpty());
    return all;
  }

  /** One page of models, for callers that page themselves. */
  public ListModelsResponse listModels(ListModelsRequest request) {
    return call(() -> models(null).listModels(request));
  }

  /** Unregisters a model; returns it as it was just before. */
  public Model unregisterModel(String name) {
    UnregisterModelRequest request = UnregisterModelRequest.newBuilder().setName(name).build();
    return call(() -> models(null).unregisterModel(request)).getModel();
  }

  /** The hook points of a READY model, in forward order. */
  public List<HookPoint> listHookPoints(String model) {
    return listHookPoints(ModelRef.newBuilder().setName(model).build());
  }

  /** The hook points of a READY model, pinned to a content hash when {@code model} has one. */
  public List<HookPoint> listHookPoints(ModelRef model) {
    ListHookPointsRequest request = ListHookPointsRequest.newBuilder().setModel(model).build();
    return call(() -> models(null).listHookPoints(request)).getHookPointsList();
  }

  // ----- DictionaryService -----------------------------------------------------------------------

  /**
   * The raw {@code ExtractDictionary} stream: progress messages, then the result. Closing the
   * stream early cancels the extraction (nothing is stored).
   */
  public ResponseStream<ExtractDictionaryResponse> extractDictionaryStream(
      ExtractDictionaryRequest request) {
    return ResponseStream.start(
        channel,
        DictionaryServiceGrpc.getExtractDictionaryMethod(),
        options(LONG_DEADLINE),
        request);
  }

  /** Runs an extraction to the end; returns the stored dictionaries (one per hook point). */
  public List<Dictionary> extractDictionary(ExtractDictionaryRequest request) {
    return extractDictionary(request, progress -> {});
  }

  /**
   * Runs an extraction to the end, handing each progress message to {@code onProgress}; returns the
   * stored dictionaries (one per hook point).
   */
  public List<Dictionary> extractDictionary(
      ExtractDictionaryRequest request, Consumer<ExtractionProgress> onProgress) {
    return resultOf(
        extractDictionaryStream(request),
        message -> {
          if (message.hasResult()) {
            return message.getResult().getDictionariesList();
          }
          onProgress.accept(message.getProgress());
          return null;
        });
  }

  /** A stored dictionary with its entries (without prototypes). */
  public Dictionary getDictionary(String id) {
    return getDictionary(id, false);
  }

  /** A stored dictionary with its entries; with the prototype tensors when asked for. */
  public Dictionary getDictionary(String id, boolean includePrototypes) {
    GetDictionaryRequest request =
        GetDictionaryRequest.newBuilder().setId(id).setIncludePrototypes(includePrototypes).build();
    return call(() -> dictionaries().getDictionary(request)).getDictionary();
  }

  /** Every stored dictionary, newest first (all pages). */
  public List<Dictionary> listDictionaries() {
    return listDictionaries("");
  }

  /** The stored dictionaries of one model (every model when empty), newest first (all pages). */
  public List<Dictionary> listDictionaries(String model) {
    List<Dictionary> all = new ArrayList<>();
    String token = "";
    do {
      ListDictionariesResponse page =
          listDictionaries(
              ListDictionariesRequest.newBuilder()
                  .setModel(model)
                  .setPage(PageRequest.newBuilder().setPageToken(token))
                  .build());
      all.addAll(page.getDictionariesList());
      token = page.getPage().getNextPageToken();
    } while (!token.isEmpty());
    return all;
  }

  /** One page of dictionaries, for callers that page themselves. */
  public ListDictionariesResponse listDictionaries(ListDictionariesRequest request) {
    return call(() -> dictionaries().listDictionaries(request));
  }

  /** Deletes a stored dictionary; returns it as it was. */
  public Dictionary deleteDictionary(String id) {
    DeleteDictionaryRequest request = DeleteDictionaryRequest.newBuilder().setId(id).build();
    return call(() -> dictionaries().deleteDictionary(request)).getDictionary();
  }

  /** The raw {@code ExportDictionary} stream: pieces of the archive, at most 1 MiB each. */
  public ResponseStream<ExportDictionaryResponse> exportDictionaryStream(String id) {
    return ResponseStream.start(
        channel,
        DictionaryServiceGrpc.getExportDictionaryMethod(),
        options(null),
        ExportDictionaryRequest.newBuilder().setId(id).build());
  }

  /**
   * Writes the dictionary's portable archive to {@code out} (not closed) and checks it against the
   * server's sha256; returns its size in bytes. A mismatch throws {@code DATA_LOSS}.
   */
  public long exportDictionary(String id, OutputStream out) {
    MessageDigest sha256 = sha256();
    String expected = "";
    long written = 0;
    long total = -1;
    try (ResponseStream<ExportDictionaryResponse> pieces = exportDictionaryStream(id)) {
      for (ExportDictionaryResponse piece : pieces) {
        if (expected.isEmpty()) {
          expected = piece.getSha256();
          total = piece.getTotalBytes();
        }
        ByteString data = piece.getData();
        data.writeTo(out);
        for (var buffer : data.asReadOnlyByteBufferList()) {
          sha256.update(buffer);
        }
        written += data.size();
      }
    } catch (IOException failed) {
      throw new UncheckedIOException(failed);
    }
    String actual = "sha256:" + HexFormat.of().formatHex(sha256.digest());
    if (!actual.equals(expected) || (total >= 0 && total != written)) {
      throw new ChunkscopeException(
          Status.Code.DATA_LOSS,
          "exported archive failed its check: expected "
              + expected
              + " ("
              + total
              + " bytes), got "
              + actual
              + " ("
              + written
              + " bytes)");
    }
    return written;
  }

  /** The dictionary as a portable archive (checked against the server's sha256). */
  public byte[] exportDictionary(String id) {
    ByteArrayOutputStream archive = new ByteArrayOutputStream();
    exportDictionary(id, archive);
    return archive.toByteArray();
  }

  /**
   * Stores a dictionary from an archive made by {@link #exportDictionary} (the server checks it).
   */
  public Dictionary importDictionary(byte[] archive) {
    String digest = "sha256:" + HexFormat.of().formatHex(sha256().digest(archive));
    return importDictionary(new ByteArrayInputStream(archive), digest);
  }

  /**
   * Stores a dictionary from an archive read from {@code in} (not closed), sent in 1 MiB pieces;
   * {@code sha256} ({@code "sha256:<hex>"}, or empty) is checked by the server at the end.
   */
  public Dictionary importDictionary(InputStream in, String sha256) {
    CompletableFuture<ImportDictionaryResponse> reply = new CompletableFuture<>();
    StreamObserver<ImportDictionaryRequest> pieces =
        stub(DictionaryServiceGrpc.newStub(channel), null)
            .importDictionary(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ImportDictionaryResponse value) {
                    reply.complete(value);
                  }

                  @Override
                  public void onError(Throwable error) {
                    reply.completeExceptionally(error);
                  }

                  @Override
                  public void onCompleted() {
                    reply.completeExceptionally(
                        Status.INTERNAL.withDescription("no reply to the import").asException());
                  }
                });
    try {
      byte[] buffer = new byte[IMPORT_CHUNK_BYTES];
      boolean first = true;
      int read;
      while ((read = in.readNBytes(buffer, 0, buffer.length)) > 0 || first) {
        ImportDictionaryRequest.Builder piece =
            ImportDictionaryRequest.newBuilder().setData(ByteString.copyFrom(buffer, 0, read));
        if (first) {
          piece.setSha256(Objects.requireNonNullElse(sha256, ""));
          first = false;
        }
        pieces.onNext(piece.build());
        if (read < buffer.length) {
          break;
        }
      }
      pieces.onCompleted();
    } catch (IOException | RuntimeException failed) {
      pieces.onError(
          Status.CANCELLED.withDescription("import aborted").withCause(failed).asException());
      if (failed instanceof IOException io) {
        throw new UncheckedIOException(io);
      }
      throw (RuntimeException) failed;
    }
    try {
      return reply.get().getDictionary();
    } catch (ExecutionException failed) {
      throw ChunkscopeException.from(failed.getCause());
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      throw new ChunkscopeException(Status.Code.CANCELLED, "interrupted while importing");
    }
  }

  /** Stores a dictionary from an archive file. */
  public Dictionary importDictionary(Path archive) {
    try {
      return importDictionary(Files.readAllBytes(archive));
    } catch (IOException failed) {
      throw new UncheckedIOException(failed);
    }
  }

  // ----- DetectionService ------------------------------------------------------------------------

  /** Chunks active per token for a batch of inputs. */
  public DetectResponse detect(DetectRequest request) {
    return call(() -> stub(DetectionServiceGrpc.newBlockingStub(channel), null).detect(request));
  }

  /** Chunks active per token in each text (one result per text, in order). */
  public DetectResponse detect(DetectionConfig config, String... texts) {
    DetectRequest.Builder request = DetectRequest.newBuilder().setConfig(config);
    for (String text : texts) {
      request.addInputs(DetectInput.newBuilder().setText(text));
    }
    return detect(request.build());
  }

  /**
   * Opens a monitoring stream: {@code config} is sent first, then inputs as they come, each
   * answered in order. Close the session (try-with-resources) when done.
   */
  public StreamDetectSession streamDetect(DetectionConfig config) {
    StreamDetectSession session = new StreamDetectSession();
    try {
      stub(DetectionServiceGrpc.newStub(channel), LONG_DEADLINE).streamDetect(session.observer());
      session.open(config);
    } catch (RuntimeException error) {
      throw ChunkscopeException.from(error);
    }
    return session;
  }

  // ----- PerturbationService ---------------------------------------------------------------------

  /** One forward pass with interventions: next-token log-probabilities before and after. */
  public PerturbResponse perturb(PerturbRequest request) {
    return call(
        () -> stub(PerturbationServiceGrpc.newBlockingStub(channel), null).perturb(request));
  }

  /**
   * Streamed generation: one message per new token and arm, then a {@code done} message per arm
   * with the whole continuation. Closing the stream early stops the generation.
   */
  public ResponseStream<GenerateResponse> generate(GenerateRequest request) {
    return ResponseStream.start(
        channel, PerturbationServiceGrpc.getGenerateMethod(), options(GENERATE_DEADLINE), request);
  }

  /**
   * Runs a generation to the end; the continuation of each arm (perturbed, and control if asked).
   */
  public Map<Arm, String> generateText(GenerateRequest request) {
    Map<Arm, String> texts = new EnumMap<>(Arm.class);
    try (ResponseStream<GenerateResponse> steps = generate(request)) {
      for (GenerateResponse step : steps) {
        if (step.getDone()) {
          texts.put(step.getArm(), step.getText());
        }
      }
    }
    return texts;
  }

  // ----- AnalysisService -------------------------------------------------------------------------

  /**
   * The raw {@code CompareRepresentations} stream: progress, then the result. Closing it early
   * stops the work. Default deadline: 10 minutes.
   */
  public ResponseStream<CompareRepresentationsResponse> compareRepresentationsStream(
      CompareRepresentationsRequest request) {
    return ResponseStream.start(
        channel,
        AnalysisServiceGrpc.getCompareRepresentationsMethod(),
        options(GENERATE_DEADLINE),
        request);
  }

  /** Compares two sets of states to the end; progress goes to {@code onProgress}. */
  public CompareRepresentationsResult compareRepresentations(
      CompareRepresentationsRequest request, Consumer<AnalysisProgress> onProgress) {
    return resultOf(
        compareRepresentationsStream(request),
        message -> {
          if (message.hasResult()) {
            return message.getResult();
          }
          onProgress.accept(message.getProgress());
          return null;
        });
  }

  /** Compares two sets of states (CKA, Procrustes, Gromov-Wasserstein, DSA) to the end. */
  public CompareRepresentationsResult compareRepresentations(
      CompareRepresentationsRequest request) {
    return compareRepresentations(request, progress -> {});
  }

  /**
   * The raw {@code LayerSimilarity} stream: progress, then the result. Closing it early stops the
   * work. Default deadline: 10 minutes.
   */
  public ResponseStream<LayerSimilarityResponse> layerSimilarityStream(
      LayerSimilarityRequest request) {
    return ResponseStream.start(
        channel,
        AnalysisServiceGrpc.getLayerSimilarityMethod(),
        options(GENERATE_DEADLINE),
        request);
  }

  /** The similarity map between layers, to the end; progress goes to {@code onProgress}. */
  public LayerSimilarityResult layerSimilarity(
      LayerSimilarityRequest request, Consumer<AnalysisProgress> onProgress) {
    return resultOf(
        layerSimilarityStream(request),
        message -> {
          if (message.hasResult()) {
            return message.getResult();
          }
          onProgress.accept(message.getProgress());
          return null;
        });
  }

  /** The similarity map between layers, with groups of similar layers. */
  public LayerSimilarityResult layerSimilarity(LayerSimilarityRequest request) {
    return layerSimilarity(request, progress -> {});
  }

  /** The BIMT connection cost of a network under its current neuron placement. */
  public ConnectionCostResponse connectionCost(ConnectionCostRequest request) {
    return call(
        () -> stub(AnalysisServiceGrpc.newBlockingStub(channel), null).connectionCost(request));
  }

  /** Neuron permutations that lower the connection cost without changing the function. */
  public OptimizeNeuronLayoutResponse optimizeNeuronLayout(OptimizeNeuronLayoutRequest request) {
    return call(
        () ->
            stub(AnalysisServiceGrpc.newBlockingStub(channel), GENERATE_DEADLINE)
                .optimizeNeuronLayout(request));
  }

  // ----- helpers ---------------------------------------------------------------------------------

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException impossible) {
      throw new IllegalStateException(impossible);
    }
  }

  private static void requirePositive(Duration duration, String what) {
    Objects.requireNonNull(duration, what);
    if (duration.isNegative() || duration.isZero()) {
      throw new IllegalArgumentException(what + " must be positive, got " + duration);
    }
  }

  /**
   * Connection settings. Plaintext unless {@link #tls()}, {@link #trustedCertificates} or {@link
   * #clientCertificate} is used.
   */
  public static final class Builder {
    private String address = "127.0.0.1:50051";
    private String token = System.getenv().getOrDefault("CHUNKSCOPE_TOKEN", "");
    private boolean tls;
    private byte[] caPem;
    private byte[] certChainPem;
    private byte[] privateKeyPem;
    private String authority;
    private Duration defaultDeadline = DEFAULT_DEADLINE;
    private int maxInboundMessageSize = DEFAULT_MAX_MESSAGE_BYTES;
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder() {}

    /**
     * The server, as {@code host:port} (default {@code 127.0.0.1:50051}), several replicas as a
     * comma-separated list of {@code host:port} (hostnames are resolved, each to all of its
     * addresses), or a gRPC target URI such as {@code dns:///chunkscope.svc:50051} (every A record
     * is used). Calls are spread round_robin over the addresses; the idempotent RPCs are retried on
     * UNAVAILABLE (see the README's "Several replicas").
     */
    public Builder address(String address) {
      this.address = Objects.requireNonNull(address, "address");
      return this;
    }

    /**
     * API key sent as {@code authorization: Bearer <token>} on every call; empty for none. Default:
     * the {@code CHUNKSCOPE_TOKEN} environment variable, if set.
     */
    public Builder token(String token) {
      this.token = Objects.requireNonNullElse(token, "");
      return this;
    }

    /** Use TLS, trusting the system's root certificates (unless {@link #trustedCertificates}). */
    public Builder tls() {
      this.tls = true;
      return this;
    }

    /** Use TLS, trusting only the CA certificates in this PEM. */
    public Builder trustedCertificates(byte[] caPem) {
      this.caPem = Objects.requireNonNull(caPem, "caPem").clone();
      this.tls = true;
      return this;
    }

    /** Use TLS, trusting only the CA certificates in this PEM file. */
    public Builder trustedCertificates(Path caPem) {
      return trustedCertificates(read(caPem));
    }

    /**
     * Use mutual TLS: present this certificate chain and its private key (PEM; the key in PKCS#8
     * form, {@code -----BEGIN PRIVATE KEY-----}).
     */
    public Builder clientCertificate(byte[] certChainPem, byte[] privateKeyPem) {
      this.certChainPem = Objects.requireNonNull(certChainPem, "certChainPem").clone();
      this.privateKeyPem = Objects.requireNonNull(privateKeyPem, "privateKeyPem").clone();
      this.tls = true;
      return this;
    }

    /** Use mutual TLS with a certificate chain and a PKCS#8 private key read from PEM files. */
    public Builder clientCertificate(Path certChainPem, Path privateKeyPem) {
      return clientCertificate(read(certChainPem), read(privateKeyPem));
    }

    /** The name to verify the server's certificate against, when it differs from the address. */
    public Builder overrideAuthority(String authority) {
      this.authority = authority;
      return this;
    }

    /** Deadline of quick calls (default 30 s); long calls get at least their own defaults. */
    public Builder defaultDeadline(Duration deadline) {
      requirePositive(deadline, "defaultDeadline");
      this.defaultDeadline = deadline;
      return this;
    }

    /** Largest reply accepted, in bytes (default 64 MiB, the server's default limit). */
    public Builder maxInboundMessageSize(int bytes) {
      if (bytes <= 0) {
        throw new IllegalArgumentException("maxInboundMessageSize must be positive");
      }
      this.maxInboundMessageSize = bytes;
      return this;
    }

    /** Further interceptors on every call of the channel (tracing, logging, ...). */
    public Builder intercept(ClientInterceptor... interceptors) {
      for (ClientInterceptor interceptor : interceptors) {
        this.interceptors.add(Objects.requireNonNull(interceptor, "interceptor"));
      }
      return this;
    }

    /** Opens the channel (lazily: the first call connects). */
    public ChunkscopeClient build() {
      ManagedChannelBuilder<?> builder =
          Grpc.newChannelBuilder(Replicas.target(address), credentials());
      builder.defaultServiceConfig(Replicas.serviceConfig());
      builder.enableRetry();
      builder.maxInboundMessageSize(maxInboundMessageSize);
      builder.maxInboundMetadataSize(1 << 20);
      if (authority != null) {
        builder.overrideAuthority(authority);
      }
      if (!token.isEmpty()) {
        Metadata headers = new Metadata();
        headers.put(AUTHORIZATION, "Bearer " + token);
        ClientInterceptor bearer = MetadataUtils.newAttachHeadersInterceptor(headers);
        builder.intercept(bearer);
      }
      builder.intercept(interceptors);
      ManagedChannel managed = builder.build();
      return new ChunkscopeClient(managed, managed, true, defaultDeadline, null);
    }

    private ChannelCredentials credentials() {
      if (!tls) {
        return InsecureChannelCredentials.create();
      }
      TlsChannelCredentials.Builder credentials = TlsChannelCredentials.newBuilder();
      try {
        if (caPem != null) {
          credentials.trustManager(new ByteArrayInputStream(caPem));
        }
        if (certChainPem != null) {
          credentials.keyManager(
              new ByteArrayInputStream(certChainPem), new ByteArrayInputStream(privateKeyPem));
        }
      } catch (IOException | IllegalArgumentException bad) {
        throw new IllegalArgumentException(
            "unusable TLS certificate or key: " + bad.getMessage(), bad);
      }
      return credentials.build();
    }

    private static byte[] read(Path path) {
      try {
        return Files.readAllBytes(path);
      } catch (IOException failed) {
        throw new UncheckedIOException(failed);
      }
    }
  }
}
