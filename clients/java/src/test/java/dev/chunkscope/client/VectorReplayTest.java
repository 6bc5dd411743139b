package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.protobuf.Descriptors;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import io.grpc.CallOptions;
import io.grpc.MethodDescriptor;
import io.grpc.ServiceDescriptor;
import io.grpc.protobuf.ProtoMethodDescriptorSupplier;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.TestInstance;

/**
 * Replays every tests/vectors/*.json (the directory in CHUNKSCOPE_TEST_VECTORS) with the rules of
 * tests/vectors/README.md: the method is found by service and RPC name through the generated
 * descriptors, the request parsed and the replies printed with protobuf's proto3 JSON mapping
 * ({@link JsonFormat} with a {@link JsonFormat.TypeRegistry}), volatile fields dropped at any
 * depth, numbers compared with a relative tolerance of 1e-5 or an absolute one of 1e-9.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class VectorReplayTest {
  private static final double REL_TOLERANCE = 1e-5;
  private static final double ABS_TOLERANCE = 1e-9;
  private static final Pattern PLACEHOLDER = Pattern.compile("\\{\\{([A-Z0-9_]+)\\}\\}");

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

  static List<Path> vectorFiles() throws IOException {
    Path dir = Path.of(Fixture.env("VECTORS"));
    try (Stream<Path> files = Files.list(dir)) {
      return files.filter(p -> p.getFileName().toString().endsWith(".json")).sorted().toList();
    }
  }

  static JsonObject read(Path file) throws IOException {
    return JsonParser.parseString(Files.readString(file)).getAsJsonObject();
  }

  @TestFactory
  Stream<DynamicTest> everyVectorReplays() throws IOException {
    List<Path> files = vectorFiles();
    assertFalse(files.isEmpty(), "no vectors in " + Fixture.env("VECTORS"));
    return files.stream()
        .map(
            file ->
                DynamicTest.dynamicTest(
                    file.getFileName().toString(),
                    () -> {
                      JsonObject vector = read(file);
                      JsonObject outcome = replay(vector);
                      String problem = check(vector, outcome);
                      assertNull(
                          problem, () -> file.getFileName() + ": " + problem + "\ngot: " + outcome);
                    }));
  }

  @Test
  void thereAreVectorsOfEveryKind() throws IOException {
    Set<String> kinds = new TreeSet<>();
    boolean anError = false;
    for (Path file : vectorFiles()) {
      JsonObject vector = read(file);
      kinds.add(vector.get("kind").getAsString());
      anError |= vector.has("error");
    }
    assertEquals(Set.of("bidi_stream", "server_stream", "unary"), kinds);
    assertTrue(anError);
  }

  /** The comparison is not vacuous: a changed number, list or error is caught. */
  @Test
  void aChangedReplyIsCaught() throws Exception {
    Path dir = Path.of(Fixture.env("VECTORS"));
    JsonObject vector = read(dir.resolve("detect.json"));
    JsonObject outcome = replay(vector);
    assertNull(check(vector, outcome));
    JsonObject summary =
        outcome
            .getAsJsonObject("response")
            .getAsJsonArray("results")
            .get(0)
            .getAsJsonObject()
            .getAsJsonArray("summaries")
            .get(0)
            .getAsJsonObject();
    double best = summary.get("bestScore").getAsDouble();
    summary.addProperty("bestScore", best * 1.001);
    assertTrue(String.valueOf(check(vector, outcome)).contains("bestScore"));
    summary.addProperty("bestScore", best * (1 + 1e-7)); // within tolerance
    assertNull(check(vector, outcome));
    JsonArray tokens =
        outcome
            .getAsJsonObject("response")
            .getAsJsonArray("results")
            .get(0)
            .getAsJsonObject()
            .getAsJsonArray("tokens");
    tokens.remove(tokens.size() - 1);
    assertTrue(String.valueOf(check(vector, outcome)).contains("items"));

    JsonObject unknown = read(dir.resolve("get_model_unknown.json"));
    JsonObject failure = replay(unknown);
    assertNull(check(unknown, failure));
    failure.getAsJsonObject("error").addProperty("reason", "SOMETHING_ELSE");
    assertTrue(String.valueOf(check(unknown, failure)).contains("reason"));
  }

  // ----- replay --------------------------------------------------------------------------------

  /** The gRPC method named by the vector, from the generated {@code <Service>Grpc} class. */
  private static MethodDescriptor<Message, Message> method(String service, String name)
      throws ReflectiveOperationException {
    String simple = service.substring(service.lastIndexOf('.') + 1);
    Class<?> grpcClass = Class.forName("dev.chunkscope.v1." + simple + "Grpc");
    ServiceDescriptor descriptor =
        (ServiceDescriptor) grpcClass.getMethod("getServiceDescriptor").invoke(null);
    assertEquals(service, descriptor.getName());
    for (MethodDescriptor<?, ?> candidate : descriptor.getMethods()) {
      if (candidate.getFullMethodName().equals(service + "/" + name)) {
        @SuppressWarnings("unchecked")
        MethodDescriptor<Message, Message> typed = (MethodDescriptor<Message, Message>) candidate;
        return typed;
      }
    }
    throw new AssertionError("no method " + name + " in " + service);
  }

  /** Every message type of a file and the files it imports, for JSON of Any fields. */
  private static JsonFormat.TypeRegistry registry(Descriptors.FileDescriptor file) {
    JsonFormat.TypeRegistry.Builder registry = JsonFormat.TypeRegistry.newBuilder();
    Set<String> seen = new HashSet<>();
    List<Descriptors.FileDescriptor> pending = new ArrayList<>(List.of(file));
    while (!pending.isEmpty()) {
      Descriptors.FileDescriptor next = pending.remove(pending.size() - 1);
      if (seen.add(next.getFullName())) {
        registry.add(next.getMessageTypes());
        pending.addAll(next.getDependencies());
      }
    }
    return registry.build();
  }

  /** The vector's call through the generated descriptors; the outcome in the vector's form. */
  JsonObject replay(JsonObject vector) throws Exception {
    Map<String, String> env = Fixture.all();
    MethodDescriptor<Message, Message> method =
        method(vector.get("service").getAsString(), vector.get("method").getAsString());
    Descriptors.MethodDescriptor proto =
        ((ProtoMethodDescriptorSupplier) method.getSchemaDescriptor()).getMethodDescriptor();
    JsonFormat.TypeRegistry types = registry(proto.getFile());
    JsonFormat.Parser parser = JsonFormat.parser().usingTypeRegistry(types);
    JsonFormat.Printer printer = JsonFormat.printer().usingTypeRegistry(types);
    Message prototype =
        ((MethodDescriptor.PrototypeMarshaller<Message>) method.getRequestMarshaller())
            .getMessagePrototype();
    assertEquals(proto.getInputType(), prototype.getDescriptorForType());
    Set<String> ignore = new HashSet<>();
    if (vector.has("ignore_fields")) {
      vector.getAsJsonArray("ignore_fields").forEach(f -> ignore.add(f.getAsString()));
    }

    CallOptions options = CallOptions.DEFAULT.withDeadlineAfter(120, TimeUnit.SECONDS);
    JsonObject outcome = new JsonObject();
    try {
      switch (vector.get("kind").getAsString()) {
        case "unary" -> {
          Message request = parse(parser, prototype, substitute(vector.get("request"), env));
          Message reply = ClientCalls.blockingUnaryCall(client.channel(), method, options, request);
          outcome.add("response", render(printer, reply, ignore));
        }
        case "server_stream" -> {
          Message request = parse(parser, prototype, substitute(vector.get("request"), env));
          JsonArray replies = new JsonArray();
          Iterator<Message> stream =
              ClientCalls.blockingServerStreamingCall(client.channel(), method, options, request);
          while (stream.hasNext()) {
            replies.add(render(printer, stream.next(), ignore));
          }
          outcome.add("responses", replies);
        }
        case "bidi_stream" -> {
          CompletableFuture<List<Message>> done = new CompletableFuture<>();
          List<Message> received = new ArrayList<>();
          StreamObserver<Message> requests =
              ClientCalls.asyncBidiStreamingCall(
                  client.channel().newCall(method, options),
                  new StreamObserver<Message>() {
                    @Override
                    public void onNext(Message value) {
                      received.add(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                      done.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                      done.complete(received);
                    }
                  });
          for (JsonElement body : vector.getAsJsonArray("requests")) {
            requests.onNext(parse(parser, prototype, substitute(body, env)));
          }
          requests.onCompleted();
          JsonArray replies = new JsonArray();
          try {
            for (Message reply : done.get()) {
              replies.add(render(printer, reply, ignore));
            }
          } catch (ExecutionException failed) {
            throw (Exception) failed.getCause();
          }
          outcome.add("responses", replies);
        }
        default -> fail("unknown vector kind " + vector.get("kind"));
      }
    } catch (io.grpc.StatusRuntimeException | io.grpc.StatusException failed) {
      ChunkscopeException error = ChunkscopeException.from(failed);
      JsonObject described = new JsonObject();
      described.addProperty("code", error.code().name());
      described.addProperty("message", error.description());
      if (!error.reason().isEmpty()) {
        described.addProperty("reason", error.reason());
      }
      if (!error.fieldViolations().isEmpty()) {
        JsonArray violations = new JsonArray();
        for (ChunkscopeException.FieldViolation v : error.fieldViolations()) {
          JsonObject violation = new JsonObject();
          violation.addProperty("field", v.field());
          violation.addProperty("description", v.description());
          violations.add(violation);
        }
        described.add("field_violations", violations);
      }
      outcome.add("error", described);
    }
    return outcome;
  }

  private static Message parse(JsonFormat.Parser parser, Message prototype, JsonElement body)
      throws InvalidProtocolBufferException {
    Message.Builder builder = prototype.newBuilderForType();
    parser.merge(body.toString(), builder);
    return builder.build();
  }

  private static JsonElement render(JsonFormat.Printer printer, Message reply, Set<String> ignore)
      throws InvalidProtocolBufferException {
    return strip(JsonParser.parseString(printer.print(reply)), ignore);
  }

  // ----- the rules -----------------------------------------------------------------------------

  /** `{{NAME}}` -> env[NAME] in every string of a JSON value. */
  static JsonElement substitute(JsonElement value, Map<String, String> env) {
    if (value.isJsonPrimitive() && value.getAsJsonPrimitive().isString()) {
      Matcher m = PLACEHOLDER.matcher(value.getAsString());
      StringBuilder out = new StringBuilder();
      while (m.find()) {
        String replacement = env.get(m.group(1));
        if (replacement == null) {
          fail("the vector needs " + m.group(1) + ", which is unset");
        }
        m.appendReplacement(out, Matcher.quoteReplacement(replacement));
      }
      m.appendTail(out);
      return new JsonPrimitive(out.toString());
    }
    if (value.isJsonArray()) {
      JsonArray copy = new JsonArray();
      value.getAsJsonArray().forEach(v -> copy.add(substitute(v, env)));
      return copy;
    }
    if (value.isJsonObject()) {
      JsonObject copy = new JsonObject();
      value
          .getAsJsonObject()
          .entrySet()
          .forEach(e -> copy.add(e.getKey(), substitute(e.getValue(), env)));
      return copy;
    }
    return value;
  }

  /** Drops the keys in `ignore` at any depth. */
  static JsonElement strip(JsonElement value, Set<String> ignore) {
    if (value.isJsonArray()) {
      JsonArray copy = new JsonArray();
      value.getAsJsonArray().forEach(v -> copy.add(strip(v, ignore)));
      return copy;
    }
    if (value.isJsonObject()) {
      JsonObject copy = new JsonObject();
      value.getAsJsonObject().entrySet().stream()
          .filter(e -> !ignore.contains(e.getKey()))
          .forEach(e -> copy.add(e.getKey(), strip(e.getValue(), ignore)));
      return copy;
    }
    return value;
  }

  /** Where `actual` differs from `expected`, or null when they match. */
  static String mismatch(JsonElement expected, JsonElement actual, String path) {
    if (isBoolean(expected) || isBoolean(actual)) {
      return expected.equals(actual) ? null : differ(path, expected, actual);
    }
    if (isNumber(expected) && isNumber(actual)) {
      double e = expected.getAsDouble();
      double a = actual.getAsDouble();
      double tolerance =
          Math.max(REL_TOLERANCE * Math.max(Math.abs(e), Math.abs(a)), ABS_TOLERANCE);
      return e == a || Math.abs(e - a) <= tolerance ? null : differ(path, expected, actual);
    }
    if (expected.isJsonObject() && actual.isJsonObject()) {
      Set<String> expectedKeys = new TreeSet<>(expected.getAsJsonObject().keySet());
      Set<String> actualKeys = new TreeSet<>(actual.getAsJsonObject().keySet());
      if (!expectedKeys.equals(actualKeys)) {
        return path + ": keys differ: expected " + expectedKeys + ", got " + actualKeys;
      }
      for (String key : expectedKeys) {
        String found =
            mismatch(
                expected.getAsJsonObject().get(key),
                actual.getAsJsonObject().get(key),
                path + "." + key);
        if (found != null) {
          return found;
        }
      }
      return null;
    }
    if (expected.isJsonArray() && actual.isJsonArray()) {
      JsonArray e = expected.getAsJsonArray();
      JsonArray a = actual.getAsJsonArray();
      if (e.size() != a.size()) {
        return path + ": expected " + e.size() + " items, got " + a.size();
      }
      for (int i = 0; i < e.size(); i++) {
        String found = mismatch(e.get(i), a.get(i), path + "[" + i + "]");
        if (found != null) {
          return found;
        }
      }
      return null;
    }
    return expected.equals(actual) ? null : differ(path, expected, actual);
  }

  private static boolean isBoolean(JsonElement value) {
    return value.isJsonPrimitive() && value.getAsJsonPrimitive().isBoolean();
  }

  private static boolean isNumber(JsonElement value) {
    return value.isJsonPrimitive() && value.getAsJsonPrimitive().isNumber();
  }

  private static String differ(String path, JsonElement expected, JsonElement actual) {
    return path + ": expected " + expected + ", got " + actual;
  }

  /** Compares a replayed outcome with the vector's expectation; null when they agree. */
  static String check(JsonObject vector, JsonObject outcome) {
    for (String key : List.of("response", "responses", "error")) {
      if (vector.has(key)) {
        if (!outcome.has(key)) {
          String got = outcome.toString();
          return "expected " + key + ", got " + got.substring(0, Math.min(400, got.length()));
        }
        return mismatch(substitute(vector.get(key), Fixture.all()), outcome.get(key), key);
      }
    }
    return "vector has no expected outcome";
  }
}
