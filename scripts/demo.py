"""The chunkscope demo: register SmolLM2-135M-Instruct, extract concepts, detect them, steer.

Run by `make demo` after `make demo-model` has put the model under <data-dir>/models. Everything
goes through the public gRPC API with the Python client, as any user's program would.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.launcher import spawn_server
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as det
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from chunkscope_client.v1 import models_pb2
from chunkscope_client.v1 import perturbation_pb2 as ppb

# The demo's own texts: three concepts, each used many times, mixed with plain text.
TRAIN = [
    "The cheese shop on the corner sells a sharp cheddar cheese and a soft goat cheese.",
    "We walked along the river until the river bent south past the old mill.",
    "She played music every evening, and the music filled the narrow street.",
    "A slice of cheese on warm bread is the simplest lunch I know.",
    "The river was high after the storm, and the river banks were flooded.",
    "Good music needs silence around it; the music at the festival had none.",
    "He grated the cheese over the pasta and added more cheese at the table.",
    "Fishermen waited by the river at dawn, watching the river for a ripple.",
    "The school band practised music after class, loud music that shook the windows.",
    "Blue cheese is an acquired taste, but this cheese is mild and creamy.",
    "Children threw stones into the river and counted the rings on the river surface.",
    "The radio played old music while we cooked, and the music made the kitchen warm.",
    "The market had cheese from three valleys and bread from the bakery next door.",
    "Mice in cartoons love cheese, though real mice prefer grain to cheese.",
    "A wooden bridge crossed the river where the river was narrowest.",
    "Music lessons start in spring; the music teacher brings her own piano.",
    "The train left the station at noon and arrived in the city by evening.",
    "Rain fell on the roofs all afternoon while the clocks ticked in the hall.",
]
HELDOUT = [
    "The soup came with melted cheese, and the cheese stretched from the spoon.",
    "Boats drifted down the river, and the river carried leaves toward the sea.",
    "The music stopped suddenly, and everyone looked up when the music returned.",
    "The library closed early because the heating had failed again.",
]
CONCEPTS = ("cheese", "river", "music")
HOOK_POINTS = ("blocks.8.resid_post", "blocks.16.resid_post", "blocks.24.resid_post")


def extract_concepts(cs: Client, content_hash: str) -> list[dpb.Dictionary]:
    """Extract a PA dictionary for the demo concepts and print each entry's held-out scores."""
    request = dpb.ExtractDictionaryRequest(
        model={"name": DEMO_MODEL_NAME, "content_hash": content_hash},
        hook_points=list(HOOK_POINTS),
        corpus=dpb.Corpus(texts=dpb.TextList(texts=TRAIN)),
        heldout=dpb.Corpus(texts=dpb.TextList(texts=HELDOUT)),
        population_averaging=dpb.PopulationAveragingParams(
            concepts=[dpb.ConceptWords(concept=c) for c in CONCEPTS],
            n_samples=5,
            criterion=dpb.PA_CRITERION_TPR_AT_FPR,
            max_fpr=0.01,
            seed=0,
        ),
        description="make demo: population averaging",
    )
    print(
        f"\nextracting a population-averaging dictionary for {', '.join(CONCEPTS)} "
        f"at {', '.join(HOOK_POINTS)} ..."
    )
    started = time.perf_counter()
    dictionaries = cs.extract_dictionary(request, timeout=600)
    print(f"done in {time.perf_counter() - started:.1f}s\n")
    print(
        f"  {'hook point':<22} {'concept':<8} {'neurons':>7} {'train TPR/FPR':>14} "
        f"{'held-out TPR/FPR':>17}  best match"
    )
    for d in dictionaries:
        for e in d.entries:
            example = e.examples[0].context if e.examples else ""
            train, held = e.train, e.heldout
            print(
                f"  {d.hook_point:<22} {e.label:<8} {e.n_neurons:>7} "
                f"{train.tpr:>7.2f}/{train.fpr:<6.3f} {held.tpr:>9.2f}/{held.fpr:<6.3f}"
                f"  {example!r}"
            )
        print(f"  stored as {d.id}")
    return dictionaries


def detect_concepts(cs: Client, dictionary: dpb.Dictionary) -> None:
    """Detect the concepts in new sentences and print them with the firing tokens marked."""
    sentences = [
        "After the concert we ate bread and cheese on the river bank.",
        "The orchestra's music drifted across the water all night.",
        "Our accountant sent the quarterly report on Tuesday.",
    ]
    request = det.DetectRequest(
        config=det.DetectionConfig(
            model={"name": DEMO_MODEL_NAME}, dictionary_ids=[dictionary.id], positives_only=True
        ),
        inputs=[det.DetectInput(text=t) for t in sentences],
    )
    reply = cs.detect(request)
    print(f"\ndetecting with {dictionary.id} ({dictionary.hook_point}); firing tokens marked:")
    for text, result in zip(sentences, reply.results, strict=True):
        marked, cursor = "", 0
        for token in result.tokens:
            labels = "/".join(m.label for m in token.matches)
            marked += (
                text[cursor : token.char_start] + f"[{text[token.char_start : token.char_end]}"
            )
            marked += f"]{{{labels}}}"
            cursor = token.char_end
        print(f"  {marked + text[cursor:]}")
    print(f"  ({reply.forward_ns / 1e6:.0f} ms for the batch)")


def steer(cs: Client, dictionary: dpb.Dictionary) -> None:
    """Generate with 'cheese' activated and 'music' inhibited, an unperturbed control beside it."""
    entry = {e.label: e.id for e in dictionary.entries}
    prompt = "My favourite way to spend a Sunday afternoon is"

    def chunk(label: str, mode: int, positions: ppb.Positions) -> ppb.Intervention:
        ref = ppb.ChunkRef(dictionary_id=dictionary.id, entry_id=entry[label])
        return ppb.Intervention(chunk=ref, mode=mode, positions=positions)

    request = ppb.GenerateRequest(
        model={"name": DEMO_MODEL_NAME},
        prompt=det.DetectInput(text=prompt),
        interventions=[
            # The authors' placement: the three tokens before the last prompt token.
            chunk("cheese", ppb.INTERVENTION_MODE_ACTIVATE, ppb.Positions(indices=[-4, -3, -2])),
            # This PA entry spans all 576 neurons, so zeroing them (INHIBIT) would blank the
            # residual stream; removing the concept's direction is the gentler inhibition.
            chunk(
                "music",
                ppb.INTERVENTION_MODE_PROJECT_OUT,
                ppb.Positions(all_prompt=True, generated=True),
            ),
        ],
        sampling=ppb.SamplingParams(max_new_tokens=30, temperature=0.7, top_p=0.9, seed=11),
        control=True,
    )
    print(f"\ngenerating from {prompt!r} with cheese activated and music inhibited:")
    for message in cs.generate(request):
        if message.done:
            arm = "perturbed" if message.arm == ppb.ARM_PERTURBED else "control"
            print(f"  {arm:>9}: {prompt}{message.text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()

    print(f"starting chunkscope (data dir {args.data_dir}) ...")
    server = spawn_server(args.data_dir, "--grace-seconds", "10")
    try:
        with Client.connect(server.address, timeout=60, token=server.token) as cs:
            print(
                f"server {server.address} health: {cs.health()}, metrics on :{server.metrics_port}"
            )
            started = time.perf_counter()
            try:
                model = cs.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
                print(f"registered {model.name} in {time.perf_counter() - started:.1f}s")
            except ChunkscopeError as err:
                if err.reason != "ALREADY_EXISTS":
                    raise
                model = cs.get_model(DEMO_MODEL_NAME)  # restored from an earlier demo run
                print(f"{model.name} was already registered (restored from {args.data_dir})")

            for m in cs.list_models():
                state = models_pb2.ModelState.Name(m.state).removeprefix("MODEL_STATE_")
                print(
                    f"  model {m.name}: {state}, {m.architecture}, {m.num_blocks} blocks, "
                    f"d={m.hidden_size}, {m.parameter_count / 1e6:.1f}M params, "
                    f"{m.device}/{m.dtype}"
                )
                print(f"        {m.content_hash}")

            points = cs.list_hook_points(DEMO_MODEL_NAME, content_hash=model.content_hash)
            by_block: dict[int, list[str]] = defaultdict(list)
            for p in points:
                by_block[p.block].append(p.name.rsplit(".", 1)[-1])
            width = list(points[0].shape)
            print(f"\n{len(points)} hook points (shape {width}: batch, tokens, hidden):")
            print(f"  {'embed':<10} {'final_norm':<10}")
            for block in sorted(b for b in by_block if b >= 0):
                print(f"  block {block:>2}: {' '.join(by_block[block])}")

            dictionaries = extract_concepts(cs, model.content_hash)
            middle = next(d for d in dictionaries if d.hook_point == "blocks.16.resid_post")
            detect_concepts(cs, middle)
            steer(cs, middle)
    finally:
        code = server.terminate()
        print(f"\nserver stopped (exit {code}); its log: {server.log_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
