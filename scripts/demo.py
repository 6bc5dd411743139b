"""The chunkscope demo: register SmolLM2-135M-Instruct, extract concepts, detect them, steer, and
write a chunk page.

Run by `make demo` after `make demo-model` has put the model under <data-dir>/models. Everything
goes through the public gRPC API with the Python client and the `chunkscope` command line, as any
user's program would. The settings are the ones docs/PA_STUDY.md and docs/REPRODUCTION.md measured
to work on this model: Population Averaging with the server's default (the RECOMMENDED preset:
every occurrence a sample, the TPR-at-FPR rule with FPR <= 0.001, the radius calibrated on the
training negatives), detection at block 12, the activation grafted onto the question's last words
at block 8, and inhibition by projecting the concept's direction out at block 12.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.launcher import spawn_server
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as det
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from chunkscope_client.v1 import perturbation_pb2 as ppb

ROOT = Path(__file__).resolve().parent.parent
# The project's concept texts: training paragraphs and held-out paragraphs, with each concept's
# words (docs/concepts.json, also used by `make reproduce`).
CONCEPT_FILE = ROOT / "docs" / "concepts.json"
CONCEPTS = ("cheese", "river", "school")
HOOK_POINTS = tuple(f"blocks.{b}.resid_post" for b in (4, 8, 12, 16, 20))
DETECT_AT = "blocks.12.resid_post"
ACTIVATE_AT = "blocks.8.resid_post"
INHIBIT_AT = "blocks.12.resid_post"
# New texts, in none of the extraction's, each with what it should fire on. They are written like
# the training paragraphs (a sentence of context first): entries fitted on paragraphs miss some
# occurrences in a bare one-line sentence (README, "make demo").
SENTENCES = [
    ("We spent the whole afternoon walking through the old town. After the concert we ate bread "
     "and cheese on the river bank.", {"cheese", "river"}),
    ("It was a long day at work, so I stopped at the market on the way home. She bought a wedge "
     "of blue cheese for the picnic.", {"cheese"}),
    ("The summer holidays were almost over. The school bus stopped at the bridge over the "
     "river.", {"school", "river"}),
    ("My grandmother always kept a plate of sharp cheddar cheese in the kitchen for visitors.",
     {"cheese"}),
    ("The fishermen rowed slowly up the river while the mist lifted from the water.", {"river"}),
    ("Every morning the children walk to school together, carrying their books and lunch boxes.",
     {"school"}),
    ("Our accountant sent the quarterly report on Tuesday, and the board approved the budget.",
     set()),
    ("The orchestra played until midnight in the old theatre, and nobody wanted to leave.", set()),
]  # fmt: skip
ACTIVATE_QUESTION = "How far is the Moon from the Earth?"
INHIBIT_QUESTION = "What is mozzarella made of?"
SEEDS = (0, 1, 2)


def concept_data() -> dict[str, Any]:
    """docs/concepts.json: "concepts" (each concept's words), "train" and "heldout" paragraphs."""
    data: dict[str, Any] = json.loads(CONCEPT_FILE.read_text(encoding="utf-8"))
    return data


def extract_concepts(cs: Client, content_hash: str) -> list[dpb.Dictionary]:
    """A PA dictionary per hook point for the demo's concepts; prints held-out scores per block."""
    data = concept_data()
    request = dpb.ExtractDictionaryRequest(
        model={"name": DEMO_MODEL_NAME, "content_hash": content_hash},
        hook_points=list(HOOK_POINTS),
        corpus=dpb.Corpus(texts=dpb.TextList(texts=data["train"])),
        heldout=dpb.Corpus(texts=dpb.TextList(texts=data["heldout"])),
        population_averaging=dpb.PopulationAveragingParams(
            concepts=[dpb.ConceptWords(concept=c, words=data["concepts"][c]) for c in CONCEPTS],
            # The default preset, named: PA_PRESET_RECOMMENDED (PA_PRESET_AUTHORS: the paper's).
            preset=dpb.PA_PRESET_RECOMMENDED,
            max_fpr=0.001,
            seed=0,
        ),
        description="make demo: population averaging, recommended preset, FPR <= 0.001",
    )
    print(
        f"\nextracting {', '.join(CONCEPTS)} by population averaging at blocks "
        f"{', '.join(h.split('.')[1] for h in HOOK_POINTS)} "
        f"({len(data['train'])} training paragraphs, {len(data['heldout'])} held out) ..."
    )
    started = time.perf_counter()
    dictionaries = cs.extract_dictionary(request, timeout=900)
    print(f"done in {time.perf_counter() - started:.1f}s; held-out TPR / FPR (neurons):")
    print(f"  {'block':<6}" + "".join(f"{c:>22}" for c in CONCEPTS))
    for d in dictionaries:
        cells = {e.label: e for e in d.entries}
        row = "".join(
            f"{cells[c].heldout.tpr:>10.2f} / {cells[c].heldout.fpr:.4f} ({cells[c].n_neurons:>3})"
            for c in CONCEPTS
        )
        print(f"  {d.hook_point.split('.')[1]:<6}{row}")
    return dictionaries


def detect_concepts(cs: Client, dictionary: dpb.Dictionary) -> None:
    """Detect the concepts in new sentences; print the firing tokens and what was expected."""
    request = det.DetectRequest(
        config=det.DetectionConfig(
            model={"name": DEMO_MODEL_NAME}, dictionary_ids=[dictionary.id], positives_only=True
        ),
        inputs=[det.DetectInput(text=text) for text, _ in SENTENCES],
    )
    reply = cs.detect(request)
    print(f"\ndetecting at {dictionary.hook_point} in new sentences; firing tokens marked:")
    agree = 0
    for (text, expected), result in zip(SENTENCES, reply.results, strict=True):
        marked, cursor = "", 0
        for token in result.tokens:
            labels = "/".join(m.label for m in token.matches)
            marked += text[cursor : token.char_start]
            marked += f"[{text[token.char_start : token.char_end]}]{{{labels}}}"
            cursor = token.char_end
        fired = {s.label for s in result.summaries if s.fired}
        agree += fired == expected
        verdict = "as expected" if fired == expected else f"expected {sorted(expected) or 'none'}"
        print(f"  {marked + text[cursor:]}\n      -> {sorted(fired) or 'nothing'} ({verdict})")
    print(f"  {agree} of {len(SENTENCES)} sentences fired exactly the expected concepts")


def chat(question: str) -> list[ppb.ChatPromptMessage]:
    """The question as a user message: the server applies the model's own chat template."""
    return [ppb.ChatPromptMessage(role="user", content=question)]


# The authors' graft positions: the three tokens before the question's last token, found by the
# server in its own tokenization of the formatted prompt.
QUESTION_TAIL = ppb.MessageTokens(message_index=-1, count=3, skip_last=1)


def generate(
    cs: Client,
    messages: list[ppb.ChatPromptMessage],
    interventions: list[ppb.Intervention],
    seed: int,
) -> dict[str, str]:
    request = ppb.GenerateRequest(
        model={"name": DEMO_MODEL_NAME},
        messages=messages,
        interventions=interventions,
        sampling=ppb.SamplingParams(
            max_new_tokens=32, temperature=0.7, top_p=0.9, seed=seed, stop_at_eos=True
        ),
        control=True,
    )
    arms = {}
    for message in cs.generate(request, timeout=300):
        if message.done:
            arms["perturbed" if message.arm == ppb.ARM_PERTURBED else "control"] = message.text
    return arms


def cheese_ref(dictionary: dpb.Dictionary) -> ppb.ChunkRef:
    entry = next(e for e in dictionary.entries if e.label == "cheese")
    return ppb.ChunkRef(dictionary_id=dictionary.id, entry_id=entry.id)


def arms_of(
    cs: Client, messages: list[ppb.ChatPromptMessage], intervention: ppb.Intervention, changed: str
) -> tuple[int, int]:
    """Generate each seed with the intervention and its control; print both; count 'cheese'."""
    said = re.compile(r"\bchees(e|es)\b", re.IGNORECASE)
    hits = {"control": 0, "perturbed": 0}
    for seed in SEEDS:
        arms = generate(cs, messages, [intervention], seed)
        for arm in ("control", "perturbed"):
            hits[arm] += bool(said.search(arms[arm]))
            name = arm if arm == "control" else changed
            print(f"  {name:>9} (seed {seed}): {arms[arm].strip()!r}")
    print(f"  'cheese' said: control {hits['control']}/{len(SEEDS)}, "
          f"{changed} {hits['perturbed']}/{len(SEEDS)}")  # fmt: skip
    return hits["control"], hits["perturbed"]


def steer(cs: Client, activate_in: dpb.Dictionary, inhibit_in: dpb.Dictionary) -> None:
    """Activate cheese on an unrelated question; project it out of a question about cheese."""
    graft = ppb.Intervention(chunk=cheese_ref(activate_in), mode=ppb.INTERVENTION_MODE_ACTIVATE,
                             positions=ppb.Positions(message_tail=QUESTION_TAIL))  # fmt: skip
    print(f"\nactivating cheese at {activate_in.hook_point} (grafted on the question's last words, "
          f"as the paper does) for {ACTIVATE_QUESTION!r}:")  # fmt: skip
    arms_of(cs, chat(ACTIVATE_QUESTION), graft, "activated")

    remove = ppb.Intervention(chunk=cheese_ref(inhibit_in), mode=ppb.INTERVENTION_MODE_PROJECT_OUT,
                              positions=ppb.Positions(all_prompt=True, generated=True))  # fmt: skip
    print(f"\ninhibiting cheese at {inhibit_in.hook_point} (its direction projected out at every "
          f"token) for {INHIBIT_QUESTION!r}:")  # fmt: skip
    arms_of(cs, chat(INHIBIT_QUESTION), remove, "inhibited")


def chunk_page(address: str, token: str, dictionary: dpb.Dictionary, out: Path) -> None:
    """The chunk page of the detection dictionary over the held-out paragraphs, written by the
    `chunkscope report` command."""
    corpus = out.parent / "demo-corpus.txt"
    held = concept_data()["heldout"]
    corpus.write_text("\n".join([*held, *(s for s, _ in SENTENCES)]) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "chunkscope", "report", dictionary.id, "--corpus",
               str(corpus), "-o", str(out), "--address", address]  # fmt: skip
    print(f"\n$ chunkscope report {dictionary.id} --corpus {corpus} -o {out}")
    subprocess.run(command, check=True, env={**os.environ, "CHUNKSCOPE_TOKEN": token})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()

    print(f"starting chunkscope (data dir {args.data_dir}) ...")
    server = spawn_server(args.data_dir, "--grace-seconds", "10")
    try:
        with Client.connect(server.address, timeout=60, token=server.token) as cs:
            print(f"server {server.address}: {cs.health()}, metrics on :{server.metrics_port}")
            started = time.perf_counter()
            try:
                model = cs.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
                print(f"registered {model.name} in {time.perf_counter() - started:.1f}s")
            except ChunkscopeError as err:
                if err.reason != "ALREADY_EXISTS":
                    raise
                model = cs.get_model(DEMO_MODEL_NAME)  # restored from an earlier demo run
                print(f"{model.name} was already registered (restored from {args.data_dir})")
            print(
                f"  {model.architecture}, {model.num_blocks} blocks, d={model.hidden_size}, "
                f"{model.parameter_count / 1e6:.1f}M parameters, {model.device}/{model.dtype}"
            )

            dictionaries = extract_concepts(cs, model.content_hash)
            by_hook = {d.hook_point: d for d in dictionaries}
            detect_concepts(cs, by_hook[DETECT_AT])
            steer(cs, by_hook[ACTIVATE_AT], by_hook[INHIBIT_AT])
            page = (args.data_dir / "reports" / f"{by_hook[DETECT_AT].id}.html").resolve()
            page.parent.mkdir(parents=True, exist_ok=True)
            chunk_page(server.address, server.token, by_hook[DETECT_AT], page)
    finally:
        code = server.terminate()
        print(f"\nserver stopped (exit {code}); its log: {server.log_path}")
    print(f"chunk page: {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
