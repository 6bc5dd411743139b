"""The whole job against a running chunkscope server, in the output form every client prints.

Lists the models, picks the newest Population Averaging dictionary at a hook point, detects its
concepts in a text and generates with one concept inhibited next to a control arm:

    CHUNKSCOPE_TOKEN=$(cat data/launcher.key) python clients/python/examples/example.py

The server is `make serve` after `make demo`. The Go, TypeScript and Java examples print the same
lines for the same server, so their outputs can be diffed.
"""

from __future__ import annotations

import argparse
import os
import sys

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import models_pb2
from chunkscope_client.v1 import perturbation_pb2 as pp

NEW_TOKENS = 24


def newest_pa(client: Client, model: str, hook_point: str) -> pb.Dictionary:
    """The model's newest Population Averaging dictionary at `hook_point` (ties: smallest id)."""
    candidates = [
        d
        for d in client.list_dictionaries(model=model)
        if d.method == pb.CHUNK_METHOD_POPULATION_AVERAGING and d.hook_point == hook_point
    ]
    if not candidates:
        raise SystemExit(
            f"no Population Averaging dictionary of model {model} at {hook_point}: "
            "run `make demo` first"
        )
    candidates.sort(key=lambda d: (-d.created_at.ToNanoseconds(), d.id))
    return candidates[0]


def run(args: argparse.Namespace) -> None:
    with Client.connect(args.address, token=args.token) as client:
        print("models:")
        for m in client.list_models():
            state = models_pb2.ModelState.Name(m.state).removeprefix("MODEL_STATE_")
            print(f"  {m.name} {state} {m.architecture} {m.num_blocks} blocks")

        dictionary = client.get_dictionary(newest_pa(client, args.model, args.hook_point).id)
        labels = ", ".join(e.label for e in dictionary.entries)
        print(f"dictionary {dictionary.id} at {dictionary.hook_point}: {labels}")

        reply = client.detect(dp.DetectRequest(
            config=dp.DetectionConfig(model={"name": args.model},
                                      dictionary_ids=[dictionary.id], summary_only=True),
            inputs=[dp.DetectInput(text=args.text)],
        ))  # fmt: skip
        print(f"detect: {args.text}")
        inhibit: tuple[int, str] | None = None
        for s in reply.results[0].summaries:
            if s.fired:
                print(f"  {s.label}: fired {s.count} times, first at token {s.first_position}")
                inhibit = inhibit or (s.entry_id, s.label)
            else:
                print(f"  {s.label}: not fired")
        entry_id, label = inhibit or (dictionary.entries[0].id, dictionary.entries[0].label)

        texts: dict[int, str] = {}
        for message in client.generate(pp.GenerateRequest(
            model={"name": args.model}, prompt={"text": args.prompt},
            interventions=[pp.Intervention(
                chunk=pp.ChunkRef(dictionary_id=dictionary.id, entry_id=entry_id),
                mode=pp.INTERVENTION_MODE_PROJECT_OUT,
                positions=pp.Positions(all_prompt=True, generated=True))],
            sampling=pp.SamplingParams(max_new_tokens=NEW_TOKENS),  # temperature 0: greedy
            control=True,
        )):  # fmt: skip
            if message.done:
                texts[message.arm] = message.text
        print(f"generate with {label} inhibited (project_out), greedy, {NEW_TOKENS} tokens:")
        print(f"  perturbed: {args.prompt}{texts[pp.ARM_PERTURBED]}")
        print(f"  control:   {args.prompt}{texts[pp.ARM_CONTROL]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--token", default=os.environ.get("CHUNKSCOPE_TOKEN", ""))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--hook-point", default="blocks.16.resid_post")
    parser.add_argument(
        "--text", default="After the concert we ate bread and cheese on the river bank."
    )
    parser.add_argument("--prompt", default="My favourite food is")
    try:
        run(parser.parse_args())
    except ChunkscopeError as err:
        print(f"chunkscope-example: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
