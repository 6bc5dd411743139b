"""Every shell command and Python block of README.md and docs/*.md runs, as written, against a
live server in the state `make demo && make serve` leaves.

How a block is run:
- It runs in a scratch directory that looks like the repository root (every top-level entry is a
  link to the real one) except that `data/` is the test server's data directory, so `.venv/bin/…`,
  `clients/…` and `data/launcher.key` mean what they mean after `make demo`.
- The demo's model is stood in for by a tiny random llama saved under the demo model's name
  (`data/models/smollm2-135m-instruct`) with as many blocks as SmolLM2 (30), so the hook points
  the docs name exist; it is registered and has a Population Averaging dictionary for the demo's
  concepts at blocks.16.resid_post, as after `make demo`.
- The server also runs the OpenAI-compatible HTTP front, and the stand-in model ships the demo
  model's chat template (as SmolLM2-135M-Instruct does).
- The substitutions: the docs' server address, DOC_ADDRESS, becomes the test server's, and the
  HTTP front's, DOC_HTTP_ADDRESS, its HTTP front's.
- The environment holds no CHUNKSCOPE_* variable but CHUNKSCOPE_TOKEN, the admin key in
  data/launcher.key: the README tells the reader to `export CHUNKSCOPE_TOKEN=$(cat
  data/launcher.key)` before calling the server by hand.
- ```python blocks run as one program; ```sh blocks run as one bash script (`set -euo pipefail`)
  without the commands listed in NOT_RUN_COMMANDS. Any other fenced block must be listed in
  NOT_RUN_BLOCKS, so a new block is run unless someone decides, here, that it is not. A whole
  document is left out only when listed in NOT_RUN_DOCS, with the reason.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chunkscope.auth import KeyFile
from chunkscope_client import Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import guard_pb2 as gp
from support import ROOT, ServerProcess, save_tiny_lm, start_server

sys.path.insert(0, str(ROOT / "scripts"))
import demo  # the demo's concept texts and concepts

# Documents whose commands are not run, with why; every other document's blocks are.
NOT_RUN_DOCS = {
    "docs/DEPLOY.md": "an operator's commands for Docker, Compose and Kubernetes, none of which "
    "runs on the machines CI runs on; make deploy-check validates every file they use",
}
DOCS = [
    path
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if path.relative_to(ROOT).as_posix() not in NOT_RUN_DOCS
]
DOC_ADDRESS = "127.0.0.1:50051"
DOC_HTTP_ADDRESS = "127.0.0.1:8000"
# The demo model's chat template (SmolLM2-135M-Instruct's chat_template.jinja).
DEMO_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Fenced blocks that are not programs, by (file, first line of the block).
NOT_RUN_BLOCKS = {
    ("README.md", "registered smollm2-135m-instruct in 9.5s"): "output of make demo",
    ("README.md", "protos/chunkscope/v1/     the API: common, models, dictionaries, detection, "
     "perturbation, analysis,"): "the source layout",
    ("docs/ANALYSIS.md", "...................."): "a printed connectivity map",
    ("docs/INTEGRATIONS.md", "{"): "the shape of a reply's annotation",
    ("docs/INTEGRATIONS.md", "guardrails:"): "a LiteLLM proxy's configuration: "
    "tests/integration/test_litellm_proxy.py runs the proxy with the same settings",
    ("docs/GUARD.md", "http_filters:"): "Envoy's ext_proc filter config: no Envoy runs here; "
    "tests/integration/test_ext_proc.py parses it into Envoy's own proto and replays what it sends",
}  # fmt: skip

# Commands of ```sh blocks that are not run, by their text without the trailing comment.
NOT_RUN_COMMANDS = {
    "make demo": "downloads the demo model (minutes); this test's fixture stands in for it",
    "make test": "the whole suite (it includes this test)",
    "make serve": "serves until stopped; this test's server stands in for it",
    ".venv/bin/chunkscope serve --data-dir data --http-port 8000": (
        "serves until stopped; this test's server stands in for it, with --http-port"
    ),
    "make demo && make serve &": "as make demo and make serve",
    "make serve &": "as make serve",
    "(cd clients/go && go run ./examples/chunkscope-example --address 127.0.0.1:50051)": (
        "tests/clients/test_go_client.py runs the Go example against a live server"
    ),
    ".venv/bin/chunkscope testbed train --generator reflection --out data/models/rnn-reflection": (
        "trains for about a minute on 2 CPUs; tests/unit/test_testbeds.py covers the trainer"
    ),
}


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository root
    line: int  # line of the opening fence
    language: str
    lines: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def fenced_blocks(path: Path) -> Iterator[Block]:
    doc = path.relative_to(ROOT).as_posix()
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        yield Block(doc, i + 1, fence.group(1), tuple(lines[i + 1 : end]))
        i = end + 1


def commands(block: Block) -> list[tuple[str, str]]:
    """(key, source) per logical line of a shell block: continuations joined, key without the
    trailing comment (empty for a comment-only line)."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for line in block.lines:
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        source = "\n".join(pending)
        pending = []
        joined = " ".join(part.rstrip().removesuffix("\\").strip() for part in source.splitlines())
        out.append((re.sub(r"(^|\s+)#.*$", "", joined).strip(), source))
    return out


BLOCKS = [b for path in DOCS for b in fenced_blocks(path)]
RUNNABLE = [
    b
    for b in BLOCKS
    if b.language == "python"
    or (b.language == "sh" and any(k and k not in NOT_RUN_COMMANDS for k, _ in commands(b)))
]


def test_every_block_is_run_or_listed_as_not_run() -> None:
    listed = set(NOT_RUN_BLOCKS)
    for block in BLOCKS:
        if block.language in ("python", "sh"):
            continue
        key = (block.doc, block.lines[0] if block.lines else "")
        assert key in listed, (
            f"{block.id}: a ```{block.language} block is neither run (```python or ```sh) nor "
            f"listed in NOT_RUN_BLOCKS: {key}"
        )
        listed.discard(key)
    assert not listed, f"NOT_RUN_BLOCKS names blocks the docs no longer have: {listed}"
    keys = {k for b in BLOCKS if b.language == "sh" for k, _ in commands(b)}
    stale = set(NOT_RUN_COMMANDS) - keys
    assert not stale, f"NOT_RUN_COMMANDS names commands the docs no longer have: {stale}"
    assert len(RUNNABLE) >= 5, [b.id for b in RUNNABLE]  # the parser still finds the blocks


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """A server with the demo's model (a tiny stand-in) and a PA dictionary, and a scratch
    directory laid out like the repository with that server's data directory as data/."""
    work = tmp_path_factory.mktemp("docs-run")
    data = work / "data"
    models = data / "models"
    save_tiny_lm(models / "smollm2-135m-instruct", "llama", layers=30)
    (models / "smollm2-135m-instruct" / "chat_template.jinja").write_text(DEMO_CHAT_TEMPLATE)
    keys = KeyFile(data / "keys.json")
    token, _ = keys.create("admin", "launcher")
    (data / "launcher.key").write_text(token + "\n")
    for entry in ROOT.iterdir():
        if entry.name not in ("data", ".git"):
            (work / entry.name).symlink_to(entry)
    with socket.socket() as probe:  # a free port for the HTTP front
        probe.bind(("127.0.0.1", 0))
        http_port = probe.getsockname()[1]
    server = start_server(data, models, "--api-keys-file", str(data / "keys.json"),
                          "--http-port", str(http_port))  # fmt: skip
    with Client.connect(server.address, token=token, timeout=300) as cs:
        name = "smollm2-135m-instruct"
        cs.register_model(name, name, wait=True)
        data = demo.concept_data()
        [pa] = cs.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": name}, hook_points=["blocks.16.resid_post"],  # the examples' default
            corpus=pb.Corpus(texts=pb.TextList(texts=data["train"])),
            heldout=pb.Corpus(texts=pb.TextList(texts=data["heldout"])),
            population_averaging=pb.PopulationAveragingParams(concepts=[
                pb.ConceptWords(concept=c, words=data["concepts"][c]) for c in demo.CONCEPTS]),
        ))  # fmt: skip
        # docs/GUARD.md's example policy, which docs/INTEGRATIONS.md's guardrail calls name
        # (whichever document's blocks run first)
        cs.put_policy(
            gp.Policy(
                name="no-cheese",
                model={"name": name},
                rules=[
                    gp.PolicyRule(
                        dictionary_id=pa.id, label="cheese", action=gp.POLICY_ACTION_BLOCK
                    )
                ],
            )
        )
    yield server, work
    server.terminate()


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_block_runs_as_written(block: Block, demo_server: tuple[ServerProcess, Path]) -> None:
    server, work = demo_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKSCOPE_")}
    env["CHUNKSCOPE_TOKEN"] = (work / "data" / "launcher.key").read_text().strip()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "service"), str(ROOT / "clients/python/src")])
    if block.language == "python":
        program = work / f"block-{block.line}.py"
        program.write_text(_addresses("\n".join(block.lines), server) + "\n")
        argv = [str(work / ".venv" / "bin" / "python"), str(program)]
    else:
        kept = [src for key, src in commands(block) if key not in NOT_RUN_COMMANDS]
        script = "set -euo pipefail\n" + _addresses("\n".join(kept), server)
        argv = ["bash", "-c", script]
    done = subprocess.run(
        argv, cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n"
        f"--- stderr\n{done.stderr[-3000:]}"
    )


def _addresses(text: str, server: ServerProcess) -> str:
    http = f"127.0.0.1:{server.http_port}"
    return text.replace(DOC_ADDRESS, server.address).replace(DOC_HTTP_ADDRESS, http)
