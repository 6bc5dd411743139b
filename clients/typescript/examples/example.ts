// The end-to-end job against a running server (`make demo`, then `make serve`): list models, pick
// the newest Population Averaging dictionary at a hook point, detect its concepts in a text, then
// generate greedily with one concept inhibited next to an unperturbed control.
//
//   npm run build:test && node build/examples/example.js [--address 127.0.0.1:50051] [--token T]
//     [--model NAME] [--hook-point NAME] [--text TEXT] [--prompt TEXT]
//
// The output has the same format in every language's example, so they can be diffed.
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import {
  Arm,
  ChunkMethod,
  ChunkscopeClient,
  ChunkscopeError,
  InterventionMode,
  ModelState,
  type Dictionary,
} from "../src/index.js";

const DEFAULTS = {
  address: "127.0.0.1:50051",
  token: process.env.CHUNKSCOPE_TOKEN ?? "",
  model: "smollm2-135m-instruct",
  "hook-point": "blocks.16.resid_post",
  text: "After the concert we ate bread and cheese on the river bank.",
  prompt: "My favourite food is",
};

/** Newest first by created_at; ties go to the smallest id. */
function newer(a: Dictionary, b: Dictionary): number {
  const secs = (d: Dictionary) => d.createdAt?.seconds ?? 0n;
  const nanos = (d: Dictionary) => d.createdAt?.nanos ?? 0;
  if (secs(a) !== secs(b)) return secs(a) > secs(b) ? -1 : 1;
  if (nanos(a) !== nanos(b)) return nanos(b) - nanos(a);
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Runs the example; returns the process exit code. `print` receives each output line. */
export async function main(
  argv: string[],
  print: (line: string) => void = console.log,
): Promise<number> {
  const { values: args } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      Object.entries(DEFAULTS).map(([name, value]) => [name, { type: "string", default: value }]),
    ) as Record<keyof typeof DEFAULTS, { type: "string"; default: string }>,
    strict: true,
  });
  const model = args.model!;
  const hookPoint = args["hook-point"]!;
  const client = new ChunkscopeClient({ address: args.address!, token: args.token });
  try {
    print("models:");
    for await (const m of client.listModels()) {
      print(`  ${m.name} ${ModelState[m.state]} ${m.architecture} ${m.numBlocks} blocks`);
    }

    const candidates: Dictionary[] = [];
    for await (const d of client.listDictionaries({ model })) {
      if (d.method === ChunkMethod.POPULATION_AVERAGING && d.hookPoint === hookPoint)
        candidates.push(d);
    }
    if (candidates.length === 0) {
      console.error(
        `no Population Averaging dictionary of model ${model} at ${hookPoint}: run \`make demo\` first`,
      );
      return 1;
    }
    const dictionary = await client.getDictionary(candidates.sort(newer)[0]!.id);
    print(
      `dictionary ${dictionary.id} at ${dictionary.hookPoint}: ` +
        dictionary.entries.map((e) => e.label).join(", "),
    );

    const detected = await client.detect({
      config: { model: { name: model }, dictionaryIds: [dictionary.id], summaryOnly: true },
      inputs: [{ content: { case: "text", value: args.text! } }],
    });
    const summaries = detected.results[0]?.summaries ?? [];
    print(`detect: ${args.text}`);
    for (const s of summaries) {
      print(
        s.fired
          ? `  ${s.label}: fired ${s.count} times, first at token ${s.firstPosition}`
          : `  ${s.label}: not fired`,
      );
    }

    const fired = summaries.find((s) => s.fired);
    const target = fired
      ? { entryId: fired.entryId, label: fired.label }
      : { entryId: dictionary.entries[0]!.id, label: dictionary.entries[0]!.label };
    print(`generate with ${target.label} inhibited (project_out), greedy, 24 tokens:`);
    const texts = new Map<Arm, string>();
    const stream = client.generate({
      model: { name: model },
      prompt: { content: { case: "text", value: args.prompt! } },
      interventions: [
        {
          target: {
            case: "chunk",
            value: { dictionaryId: dictionary.id, entryId: target.entryId },
          },
          mode: InterventionMode.PROJECT_OUT,
          positions: { allPrompt: true, generated: true },
        },
      ],
      sampling: { maxNewTokens: 24 },
      control: true,
    });
    for await (const step of stream) {
      if (step.done) texts.set(step.arm, step.text);
    }
    print(`  perturbed: ${args.prompt}${texts.get(Arm.PERTURBED) ?? ""}`);
    print(`  control:   ${args.prompt}${texts.get(Arm.CONTROL) ?? ""}`);
    return 0;
  } catch (error) {
    if (error instanceof ChunkscopeError) {
      console.error(
        `${error.codeName}: ${error.message}${error.reason ? ` (${error.reason})` : ""}`,
      );
      return 1;
    }
    throw error;
  } finally {
    client.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
