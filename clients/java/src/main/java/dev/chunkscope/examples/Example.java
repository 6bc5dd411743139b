package dev.chunkscope.examples;

import dev.chunkscope.client.ChunkscopeClient;
import dev.chunkscope.client.ChunkscopeException;
import dev.chunkscope.v1.Arm;
import dev.chunkscope.v1.ChunkMethod;
import dev.chunkscope.v1.ChunkRef;
import dev.chunkscope.v1.ChunkSummary;
import dev.chunkscope.v1.DetectInput;
import dev.chunkscope.v1.DetectResult;
import dev.chunkscope.v1.DetectionConfig;
import dev.chunkscope.v1.Dictionary;
import dev.chunkscope.v1.GenerateRequest;
import dev.chunkscope.v1.Intervention;
import dev.chunkscope.v1.InterventionMode;
import dev.chunkscope.v1.Model;
import dev.chunkscope.v1.ModelRef;
import dev.chunkscope.v1.Positions;
import dev.chunkscope.v1.SamplingParams;
import java.io.PrintStream;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The end-to-end job against a running server: list the models, pick the newest Population
 * Averaging dictionary at a hook point, detect its concepts in a text, and generate with the first
 * concept that fired inhibited (projected out), next to an unperturbed control.
 *
 * <pre>
 * mvn -q compile exec:java -Dexec.args="--address 127.0.0.1:50051"
 * </pre>
 *
 * <p>Flags: --address, --token (default: $CHUNKSCOPE_TOKEN), --model, --hook-point, --text,
 * --prompt (defaults: the {@code make demo} server and model).
 */
public final class Example {
  private static final int NEW_TOKENS = 24;

  private Example() {}

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  /** Runs the example, printing to {@code out}; returns the exit status. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    Map<String, String> flags = new LinkedHashMap<>();
    flags.put("address", "127.0.0.1:50051");
    flags.put("token", "");
    flags.put("model", "smollm2-135m-instruct");
    flags.put("hook-point", "blocks.16.resid_post");
    flags.put("text", "After the concert we ate bread and cheese on the river bank.");
    flags.put("prompt", "My favourite food is");
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      String name;
      String value;
      if (!arg.startsWith("--")) {
        err.println("unexpected argument: " + arg);
        return 2;
      }
      int eq = arg.indexOf('=');
      if (eq >= 0) {
        name = arg.substring(2, eq);
        value = arg.substring(eq + 1);
      } else if (i + 1 < args.length) {
        name = arg.substring(2);
        value = args[++i];
      } else {
        err.println("missing value for " + arg);
        return 2;
      }
      if (!flags.containsKey(name)) {
        err.println(
            "unknown flag --" + name + " (known: --" + String.join(", --", flags.keySet()) + ")");
        return 2;
      }
      flags.put(name, value);
    }

    ChunkscopeClient.Builder builder = ChunkscopeClient.builder().address(flags.get("address"));
    if (!flags.get("token").isEmpty()) {
      builder.token(flags.get("token")); // otherwise $CHUNKSCOPE_TOKEN, if set
    }
    try (ChunkscopeClient client = builder.build()) {
      return demo(client, flags, out, err);
    } catch (ChunkscopeException failed) {
      err.println("chunkscope call failed: " + failed.getMessage());
      return 1;
    }
  }

  private static int demo(
      ChunkscopeClient client, Map<String, String> flags, PrintStream out, PrintStream err) {
    String modelName = flags.get("model");
    String hookPoint = flags.get("hook-point");
    String text = flags.get("text");
    String prompt = flags.get("prompt");

    List<Model> models = client.listModels();
    out.println("models:");
    for (Model model : models) {
      out.printf(
          "  %s %s %s %d blocks%n",
          model.getName(),
          model.getState().name().replaceFirst("^MODEL_STATE_", ""),
          model.getArchitecture(),
          model.getNumBlocks());
    }

    // The newest Population Averaging dictionary at the hook point (ties: the smallest id).
    Optional<Dictionary> newest =
        client.listDictionaries(modelName).stream()
            .filter(d -> d.getMethod() == ChunkMethod.CHUNK_METHOD_POPULATION_AVERAGING)
            .filter(d -> d.getHookPoint().equals(hookPoint))
            .min(
                Comparator.comparingLong((Dictionary d) -> -d.getCreatedAt().getSeconds())
                    .thenComparingInt(d -> -d.getCreatedAt().getNanos())
                    .thenComparing(Dictionary::getId));
    if (newest.isEmpty()) {
      err.printf(
          "no Population Averaging dictionary of model %s at %s: run `make demo` first%n",
          modelName, hookPoint);
      return 1;
    }
    // Listings leave the entries out; fetch them.
    Dictionary dictionary = client.getDictionary(newest.get().getId());
    out.printf(
        "dictionary %s at %s: %s%n",
        dictionary.getId(),
        dictionary.getHookPoint(),
        dictionary.getEntriesList().stream()
            .map(e -> e.getLabel())
            .collect(Collectors.joining(", ")));

    DetectionConfig config =
        DetectionConfig.newBuilder()
            .setModel(ModelRef.newBuilder().setName(modelName))
            .addDictionaryIds(dictionary.getId())
            .setSummaryOnly(true)
            .build();
    DetectResult result = client.detect(config, text).getResults(0);
    out.println("detect: " + text);
    for (ChunkSummary summary : result.getSummariesList()) {
      if (summary.getFired()) {
        out.printf(
            "  %s: fired %d times, first at token %d%n",
            summary.getLabel(), summary.getCount(), summary.getFirstPosition());
      } else {
        out.printf("  %s: not fired%n", summary.getLabel());
      }
    }

    // Inhibit the first concept that fired, else the dictionary's first entry.
    int entryId = dictionary.getEntries(0).getId();
    String label = dictionary.getEntries(0).getLabel();
    for (ChunkSummary summary : result.getSummariesList()) {
      if (summary.getFired()) {
        entryId = summary.getEntryId();
        label = summary.getLabel();
        break;
      }
    }
    GenerateRequest request =
        GenerateRequest.newBuilder()
            .setModel(ModelRef.newBuilder().setName(modelName))
            .setPrompt(DetectInput.newBuilder().setText(prompt))
            .addInterventions(
                Intervention.newBuilder()
                    .setChunk(
                        ChunkRef.newBuilder()
                            .setDictionaryId(dictionary.getId())
                            .setEntryId(entryId))
                    .setMode(InterventionMode.INTERVENTION_MODE_PROJECT_OUT)
                    .setPositions(Positions.newBuilder().setAllPrompt(true).setGenerated(true)))
            .setSampling(SamplingParams.newBuilder().setMaxNewTokens(NEW_TOKENS))
            .setControl(true)
            .build();
    Map<Arm, String> texts = client.generateText(request);
    out.printf("generate with %s inhibited (project_out), greedy, %d tokens:%n", label, NEW_TOKENS);
    out.println("  perturbed: " + prompt + texts.getOrDefault(Arm.ARM_PERTURBED, ""));
    out.println("  control:   " + prompt + texts.getOrDefault(Arm.ARM_CONTROL, ""));
    return 0;
  }
}
