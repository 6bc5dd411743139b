"""Record tests/vectors/*.json: request/response pairs every client's test suite replays.

Each vector is a call made against the client fixture (scripts/client_fixture.py); the reply is
recorded in the protos' canonical JSON form, with the fixture's values replaced by `{{ENV_NAME}}`
placeholders and the fields that change from run to run left out. Run it again after a change to
the server that changes replies on purpose (`make vectors`), and review the diff.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

import client_fixture  # noqa: E402

from vector_replay import VOLATILE, call_vector  # noqa: E402

OUT = ROOT / "tests" / "vectors"
DICT = "{{CHUNKSCOPE_TEST_DICTIONARY}}"
MODEL_REF = {"name": "{{CHUNKSCOPE_TEST_MODEL}}"}
CAT = {"dictionaryId": DICT, "entryId": 0}
CAKE = {"dictionaryId": DICT, "entryId": 1}
TEXT = "On day 3 the cat slept near the window while the cake cooled."

# name -> (description, service, method, kind, request or requests)
VECTORS: dict[str, tuple[str, str, str, str, Any]] = {
    "get_model": (
        "GetModel returns the fixture model with its architecture and hash.",
        "ModelService", "GetModel", "unary", {"name": "{{CHUNKSCOPE_TEST_MODEL}}"},
    ),
    "list_hook_points": (
        "ListHookPoints lists the tiny llama's hook points in forward order.",
        "ModelService", "ListHookPoints", "unary", {"model": MODEL_REF},
    ),
    "get_model_unknown": (
        "An unknown model is NOT_FOUND, with ErrorInfo naming the reason.",
        "ModelService", "GetModel", "unary", {"name": "no-such-model"},
    ),
    "register_model_bad_name": (
        "An invalid name is INVALID_ARGUMENT with a BadRequest field violation.",
        "ModelService", "RegisterModel", "unary",
        {"name": "Bad Name!", "sourcePath": "{{CHUNKSCOPE_TEST_MODEL_SOURCE}}"},
    ),
    "get_dictionary": (
        "GetDictionary returns the fixture's PA dictionary and its two entries.",
        "DictionaryService", "GetDictionary", "unary", {"id": DICT},
    ),
    "list_dictionaries": (
        "ListDictionaries filtered by model.",
        "DictionaryService", "ListDictionaries", "unary", {"model": "{{CHUNKSCOPE_TEST_MODEL}}"},
    ),
    "extract_dictionary_no_hook_points": (
        "A streaming call that fails before its first message: INVALID_ARGUMENT.",
        "DictionaryService", "ExtractDictionary", "server_stream",
        {"model": MODEL_REF, "corpus": {"texts": {"texts": [TEXT]}},
         "populationAveraging": {"concepts": [{"concept": "cat"}]}},
    ),
    "detect": (
        "Detect on two texts: per-token matches and per-input summaries.",
        "DetectionService", "Detect", "unary",
        {"config": {"model": MODEL_REF, "dictionaryIds": [DICT]},
         "inputs": [{"text": TEXT}, {"text": "A quiet morning without animals."}]},
    ),
    "detect_summary_only": (
        "Detect with summary_only: summaries without per-token results.",
        "DetectionService", "Detect", "unary",
        {"config": {"model": MODEL_REF, "dictionaryIds": [DICT], "summaryOnly": True},
         "inputs": [{"text": TEXT}]},
    ),
    "detect_unknown_dictionary": (
        "Detect with a dictionary id that does not exist.",
        "DetectionService", "Detect", "unary",
        {"config": {"model": MODEL_REF, "dictionaryIds": ["dict-000000000000"]},
         "inputs": [{"text": TEXT}]},
    ),
    "stream_detect": (
        "StreamDetect: config, two inputs (the second continues the first), one reply each.",
        "DetectionService", "StreamDetect", "bidi_stream",
        [{"config": {"model": MODEL_REF, "dictionaryIds": [DICT], "positivesOnly": True}},
         {"input": {"text": "On day 3 the cat slept"}},
         {"input": {"text": " while the cake cooled."}, "continues": True}],
    ),
    "perturb": (
        "Perturb with the cat chunk activated at the last token: log-probs before/after and KL.",
        "PerturbationService", "Perturb", "unary",
        {"model": MODEL_REF, "input": {"text": "The window and the"},
         "interventions": [{"chunk": CAT, "mode": "INTERVENTION_MODE_ACTIVATE",
                            "positions": {"indices": [-1]}}],
         "targetTokens": [" the"], "topK": 3},
    ),
    "generate": (
        "Generate, greedy, 4 tokens, with cake inhibited and a control arm.",
        "PerturbationService", "Generate", "server_stream",
        {"model": MODEL_REF, "prompt": {"text": "The cat"},
         "interventions": [{"chunk": CAKE, "mode": "INTERVENTION_MODE_PROJECT_OUT",
                            "positions": {"allPrompt": True, "generated": True}}],
         "sampling": {"maxNewTokens": 4}, "control": True},
    ),
}  # fmt: skip


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with client_fixture.fixture(Path(os.environ.get("TMPDIR", "/tmp")) / "vectors-fixture") as env:
        for name, (description, service, method, kind, request) in VECTORS.items():
            vector: dict[str, Any] = {
                "description": description,
                "service": f"chunkscope.v1.{service}",
                "method": method,
                "kind": kind,
                "requests" if kind == "bidi_stream" else "request": request,
                "ignore_fields": sorted(VOLATILE),
            }
            outcome = call_vector(vector, env)
            vector.update(outcome)
            text = json.dumps(vector, indent=2, ensure_ascii=False) + "\n"
            # Fixture values become placeholders, so the file does not depend on the run.
            for key in ("CHUNKSCOPE_TEST_DICTIONARY", "CHUNKSCOPE_TEST_CONTENT_HASH"):
                text = text.replace(env[key], "{{" + key + "}}")
            (OUT / f"{name}.json").write_text(text)
            print(f"{name}: {'error ' + outcome['error']['code'] if 'error' in outcome else 'ok'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
