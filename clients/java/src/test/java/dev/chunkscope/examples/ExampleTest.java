package dev.chunkscope.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.chunkscope.client.ChunkscopeClient;
import dev.chunkscope.v1.Arm;
import dev.chunkscope.v1.ChunkRef;
import dev.chunkscope.v1.DetectInput;
import dev.chunkscope.v1.GenerateRequest;
import dev.chunkscope.v1.Intervention;
import dev.chunkscope.v1.InterventionMode;
import dev.chunkscope.v1.ModelRef;
import dev.chunkscope.v1.Positions;
import dev.chunkscope.v1.SamplingParams;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The example program, run in-process against the fixture as its README shows. */
class ExampleTest {
  static final String TEXT = "On day 3 the cat slept near the window while the cake cooled.";

  private static String env(String name) {
    String value = System.getenv("CHUNKSCOPE_TEST_" + name);
    if (value == null) {
      fail("CHUNKSCOPE_TEST_" + name + " is unset: run under scripts/client_fixture.py");
    }
    return value;
  }

  private record Run(int status, String text, String err) {
    List<String> out() {
      return text.lines().toList();
    }
  }

  private static Run run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status =
        Example.run(
            args,
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(
        status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void printsTheAgreedFormatAgainstTheFixture() {
    Run run =
        run(
            "--address", env("ADDRESS"),
            "--token", env("TOKEN"),
            "--model", env("MODEL"),
            "--hook-point", env("HOOK_POINT"),
            "--text", TEXT,
            "--prompt", "The cat");
    assertEquals(0, run.status(), run.err());
    List<String> lines = run.out();
    assertEquals("models:", lines.get(0));
    assertTrue(lines.contains("  " + env("MODEL") + " READY llama 2 blocks"), lines.toString());
    assertTrue(
        lines.contains(
            "dictionary " + env("DICTIONARY") + " at " + env("HOOK_POINT") + ": cat, cake"),
        lines.toString());
    int detect = lines.indexOf("detect: " + TEXT);
    assertTrue(detect > 0, lines.toString());
    // The fixture is deterministic: both concepts fire once (the shared vectors agree).
    assertEquals("  cat: fired 1 times, first at token 10", lines.get(detect + 1));
    assertEquals("  cake: fired 1 times, first at token 31", lines.get(detect + 2));
    assertEquals(
        "generate with cat inhibited (project_out), greedy, 24 tokens:", lines.get(detect + 3));
    assertTrue(lines.get(detect + 4).startsWith("  perturbed: The cat"), lines.get(detect + 4));

    // Greedy decoding: the same request made directly gives the printed continuations.
    GenerateRequest request =
        GenerateRequest.newBuilder()
            .setModel(ModelRef.newBuilder().setName(env("MODEL")))
            .setPrompt(DetectInput.newBuilder().setText("The cat"))
            .addInterventions(
                Intervention.newBuilder()
                    .setChunk(
                        ChunkRef.newBuilder().setDictionaryId(env("DICTIONARY")).setEntryId(0))
                    .setMode(InterventionMode.INTERVENTION_MODE_PROJECT_OUT)
                    .setPositions(Positions.newBuilder().setAllPrompt(true).setGenerated(true)))
            .setSampling(SamplingParams.newBuilder().setMaxNewTokens(24))
            .setControl(true)
            .build();
    try (ChunkscopeClient client =
        ChunkscopeClient.builder().address(env("ADDRESS")).token(env("TOKEN")).build()) {
      Map<Arm, String> texts = client.generateText(request);
      // (compared as text: a random model's continuation may hold line breaks)
      String tail =
          "generate with cat inhibited (project_out), greedy, 24 tokens:\n"
              + "  perturbed: The cat"
              + texts.get(Arm.ARM_PERTURBED)
              + "\n  control:   The cat"
              + texts.get(Arm.ARM_CONTROL)
              + "\n";
      assertTrue(run.text().endsWith(tail), run.text());
    }
  }

  @Test
  void withoutADictionaryItSaysToRunTheDemo() {
    Run run =
        run(
            "--address=" + env("ADDRESS"),
            "--token=" + env("TOKEN"),
            "--model=" + env("MODEL"),
            "--hook-point=blocks.0.resid_post");
    assertEquals(1, run.status());
    assertTrue(run.err().contains("make demo"), run.err());
  }

  @Test
  void unknownFlagsAreRefused() {
    Run run = run("--adress", "x");
    assertEquals(2, run.status());
    assertTrue(run.err().contains("--adress"), run.err());
  }
}
