"""kill -9 at random moments during extraction, import, delete, registration and start-up.

One data directory lives through every round. Each round starts a server on it, begins one
state-changing operation, kills the server with SIGKILL at a seeded random moment (or on a
progress phase of an extraction, plus jitter), then starts a new server on the same directory and
checks that what it serves is either the complete old state or the complete new state:

- the registered models are the old set or the new set; a model that was registered is READY;
- the stored dictionaries are the old set or the new set; every old one is byte-for-byte what it
  was (GetDictionary with prototypes); every listed one can be fetched and exported, and its
  archive passes the store's own import validation (a round trip into a scratch store);
- a call that returned OK before the kill is never lost (durability);
- the directories under <data-dir>/dictionaries, the SQLite index and ListDictionaries agree;
- `PRAGMA integrity_check` is ok on every SQLite database in the data directory;
- no temporary or half-deleted directory (.tmp-*, .trash-*) is left after start-up, neither real
  ones nor the orphans planted before each restart.

CHUNKSCOPE_CRASH_ROUNDS sets the number of rounds (default 8, about 90 s on two cores);
CHUNKSCOPE_CRASH_SEED the seed (default 6).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import models_pb2 as mp
from helpers.model_files import copy_model
from support import ServerProcess, start_server

ROUNDS = int(os.environ.get("CHUNKSCOPE_CRASH_ROUNDS", "8"))
SEED = int(os.environ.get("CHUNKSCOPE_CRASH_SEED", "6"))
HOOK = "blocks.1.resid_post"
ID = re.compile(r"^dict-[0-9a-f]{12}$")
TEXTS = [
    f"On day {i} the cat slept near the window while the cake cooled and the {w} waited."
    for i in range(60)
    for w in ("dog", "fish")
]


@dataclass
class State:
    """What the server stores, as the API shows it."""

    models: dict[str, str] = field(default_factory=dict)  # name -> source path
    dictionaries: dict[str, bytes] = field(default_factory=dict)  # id -> GetDictionary bytes


def observe(c: Client) -> State:
    state = State()
    for m in c.list_models():
        state.models[m.name] = m.source_path
    for d in c.list_dictionaries():
        full = c.get_dictionary(d.id, include_prototypes=True)
        state.dictionaries[d.id] = full.SerializeToString(deterministic=True)
    return state


def check_disk(data_dir: Path, listed: set[str]) -> None:
    """Directories, index and API agree; databases intact; no leftovers of interrupted writes."""
    root = data_dir / "dictionaries"
    leftovers = [p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    assert not leftovers, f"temporary files left after start-up: {leftovers}"
    stray = [
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if re.search(r"(\.tmp|\.partial|\.part)$", p.name) or p.name.startswith(".tmp")
    ]
    assert not stray, f"temporary files left in the data directory: {stray}"
    on_disk = {p.name for p in root.iterdir() if p.is_dir() and ID.match(p.name)}
    for database in sorted(data_dir.glob("*.sqlite3")):
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            result = db.execute("PRAGMA integrity_check").fetchall()
            assert result == [("ok",)], f"{database.name}: {result}"
            if database.name == "registry.sqlite3":
                indexed = {r[0] for r in db.execute("SELECT id FROM dictionaries")}
                assert indexed == on_disk == listed, (indexed, on_disk, listed)
        finally:
            db.close()
    for dictionary_id in on_disk:
        names = sorted(p.name for p in (root / dictionary_id).iterdir())
        assert names == ["chunks.safetensors", "manifest.json"], (dictionary_id, names)


def check_archives(c: Client, state: State, scratch: Path) -> None:
    """Every stored dictionary exports, and the archive passes import validation elsewhere."""
    from chunkscope.store.dictionaries import LocalDictionaryStore

    store = LocalDictionaryStore(scratch)
    try:
        for dictionary_id in state.dictionaries:
            archive = c.export_dictionary(dictionary_id)
            manifest = store.import_archive(archive)
            assert manifest["id"] == dictionary_id
            store.delete(dictionary_id)
    finally:
        store.close()


def archive_with_new_id(archive: bytes, new_id: str) -> bytes:
    """The same dictionary under another id (a valid archive for a dictionary not stored yet)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {i.name: tar.extractfile(i).read() for i in tar}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    manifest["id"] = new_id
    members["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("manifest.json", "chunks.safetensors"):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return out.getvalue()


@dataclass
class Outcome:
    ok: bool = False  # the call returned OK before the kill
    result: Any = None
    error: BaseException | None = None


def run_and_kill(
    server: ServerProcess, call: Callable[[Outcome], None], delay: float,
    trigger: threading.Event | None = None,
) -> Outcome:  # fmt: skip
    """Run `call` in a thread; SIGKILL the server `delay` s after start (or after `trigger`)."""
    outcome = Outcome()

    def target() -> None:
        try:
            call(outcome)
        except (ChunkscopeError, grpc.RpcError) as exc:
            outcome.error = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    if trigger is not None:
        trigger.wait(timeout=60)
    time.sleep(delay)
    server.proc.kill()
    server.proc.wait(30)
    thread.join(60)
    assert not thread.is_alive(), "the client call did not end after the server was killed"
    return outcome


class Rounds:
    def __init__(self, data_dir: Path, model_root: Path, scratch: Path, rng: random.Random):
        self.data_dir, self.model_root, self.scratch, self.rng = data_dir, model_root, scratch, rng
        self.archive = b""
        self.log: list[str] = []
        self.server: ServerProcess | None = None  # the server the next operation runs on

    def start(self) -> ServerProcess:
        return start_server(self.data_dir, self.model_root)

    def running(self) -> ServerProcess:
        if self.server is None or self.server.proc.poll() is not None:
            self.server = self.start()
        return self.server

    def connected(self, server: ServerProcess, ready: threading.Event) -> Client:
        """A client whose channel is up (so the kill's delay counts from the call itself)."""
        c = self.client(server)
        c.health()
        ready.set()
        return c

    def client(self, server: ServerProcess) -> Client:
        return Client.connect(server.address, timeout=120, token=server.token or None)

    def verify(self, before: State, allowed: list[State], outcome: Outcome, what: str) -> State:
        """Restart on the same directory; the state must be one of `allowed` (old or new).

        The server started here stays up for the next operation. Before it starts, orphans of
        the kinds an interrupted write or delete leaves are planted next to any real ones: start-up
        must clean both."""
        root = self.data_dir / "dictionaries"
        planted = root / f".tmp-dict-{len(self.log):012x}-dead"
        planted.mkdir(parents=True)
        (planted / "chunks.safetensors").write_bytes(b"half a file")
        (root / f".trash-dict-{len(self.log):012x}-dead").mkdir()
        server = self.server = self.start()
        with self.client(server) as c:
            for m in c.list_models():
                assert m.state == mp.MODEL_STATE_READY, (
                    f"{what}: model {m.name} is {m.state} after restart: {m.state_reason}"
                )
            after = observe(c)
            listed = set(after.dictionaries)
            check_disk(self.data_dir, listed)
            check_archives(c, after, self.scratch / f"r{len(self.log)}")
        for old_id, blob in before.dictionaries.items():
            if old_id in after.dictionaries:
                assert after.dictionaries[old_id] == blob, f"{what}: {old_id} changed"
        matches = [i for i, s in enumerate(allowed) if _same(s, after)]
        assert matches, (
            f"{what}: state after restart is neither old nor new: models {sorted(after.models)}, "
            f"dictionaries {sorted(after.dictionaries)}; allowed "
            + "; ".join(f"{sorted(s.models)} {sorted(s.dictionaries)}" for s in allowed)
        )
        if outcome.ok:
            assert matches[-1] == len(allowed) - 1, f"{what}: returned OK but the change was lost"
        self.log.append(f"{what}: {'new' if matches[-1] else 'old'} state")
        return after

    # ----- operations ----------------------------------------------------------------------

    def extract(self, before: State) -> State:
        server = self.running()
        phase = self.rng.choice(["time", "capture", "fit", "store"])
        jitter = self.rng.uniform(0, 0.05) if phase != "time" else self.rng.uniform(0.0, 3.0)
        trigger = threading.Event()
        wanted = {"capture": pb.EXTRACTION_PHASE_CAPTURE, "fit": pb.EXTRACTION_PHASE_FIT,
                  "store": pb.EXTRACTION_PHASE_STORE}.get(phase)  # fmt: skip
        request = pb.ExtractDictionaryRequest(
            model={"name": "cs-lm"}, hook_points=[HOOK],
            corpus=pb.Corpus(texts=pb.TextList(texts=TEXTS)), batch_size=4,
            cosine_dictionary=pb.CosineDictionaryParams(
                k=8, epochs=30, seed=self.rng.randrange(99)),
        )  # fmt: skip

        def call(outcome: Outcome) -> None:
            with self.client(server) as c:
                for message in c.extract_dictionary_stream(request):
                    if message.HasField("progress") and message.progress.phase == wanted:
                        trigger.set()
                    if message.HasField("result"):
                        outcome.ok, outcome.result = True, message.result
                        trigger.set()
            trigger.set()

        if phase == "time":
            trigger.set()
        outcome = run_and_kill(server, call, jitter, trigger)
        new_id = [d.id for d in outcome.result.dictionaries] if outcome.ok else []
        allowed = [before]
        after = self.verify(before, [*allowed, _plus_any(before, after_ids=new_id)],
                            outcome, f"extract (kill at {phase}+{jitter:.3f}s)")  # fmt: skip
        return after

    def import_(self, before: State) -> State:
        server = self.running()
        new_id = "dict-" + "".join(self.rng.choice("0123456789abcdef") for _ in range(12))
        archive = archive_with_new_id(self.archive, new_id)
        delay = self.rng.uniform(0, 0.15)
        ready = threading.Event()

        def call(outcome: Outcome) -> None:
            with self.connected(server, ready) as c:
                outcome.result = c.import_dictionary(archive)
                outcome.ok = True

        outcome = run_and_kill(server, call, delay, ready)
        return self.verify(before, [before, _plus_any(before, after_ids=[new_id])], outcome,
                           f"import (kill at {delay:.3f}s)")  # fmt: skip

    def delete(self, before: State) -> State:
        candidates = sorted(before.dictionaries)
        if len(candidates) <= 1:
            return self.import_(before)
        victim = self.rng.choice(candidates)
        server = self.running()
        delay = self.rng.uniform(0, 0.06)
        ready = threading.Event()

        def call(outcome: Outcome) -> None:
            with self.connected(server, ready) as c:
                c.delete_dictionary(victim)
                outcome.ok = True

        outcome = run_and_kill(server, call, delay, ready)
        new = State(
            dict(before.models), {k: v for k, v in before.dictionaries.items() if k != victim}
        )
        return self.verify(before, [before, new], outcome, f"delete (kill at {delay:.3f}s)")

    def register(self, before: State) -> State:
        extra = sorted(n for n in before.models if n != "cs-lm")
        server = self.running()
        delay = self.rng.uniform(0, 0.3)
        ready = threading.Event()
        if extra and self.rng.random() < 0.5:
            name = extra[0]

            def call(outcome: Outcome) -> None:
                with self.connected(server, ready) as c:
                    c.unregister_model(name)
                    outcome.ok = True

            new = State({k: v for k, v in before.models.items() if k != name}, before.dictionaries)
            what = f"unregister (kill at {delay:.3f}s)"
        else:
            name = f"cs-m{self.rng.randrange(1000)}"
            source = self.rng.choice(["rnn-gru", "tiny-gpt2", "rnn-lstm"])
            wait = self.rng.random() < 0.5

            def call(outcome: Outcome) -> None:
                with self.connected(server, ready) as c:
                    c.register_model(name, source, wait=wait)
                    outcome.ok = True

            new = State({**before.models, name: str(self.model_root.resolve() / source)},
                        before.dictionaries)  # fmt: skip
            what = f"register {source} (kill at {delay:.3f}s)"
        outcome = run_and_kill(server, call, delay, ready)
        return self.verify(before, [before, new], outcome, what)

    def startup(self, before: State) -> State:
        """SIGKILL while the server starts (recovery and model restore running)."""
        if self.server is not None:
            self.server.terminate()
        args = [
            sys.executable, "-m", "chunkscope", "serve", "--host", "127.0.0.1", "--port", "0",
            "--metrics-port", "-1", "--data-dir", str(self.data_dir),
            "--model-roots", str(self.model_root), "--device", "cpu",
        ]  # fmt: skip
        delay = self.rng.uniform(0.5, 5.0)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait(30)
        return self.verify(before, [before], Outcome(), f"start-up (kill at {delay:.2f}s)")


def _plus_any(before: State, after_ids: list[str]) -> State:
    """The old state plus one new dictionary (whose id is known, or not yet)."""
    new = State(dict(before.models), dict(before.dictionaries))
    new.dictionaries.update({i: b"" for i in after_ids} or {"*new": b""})
    return _PlusOne(new.models, new.dictionaries, set(before.dictionaries), set(after_ids))


@dataclass
class _PlusOne(State):
    old_ids: set[str] = field(default_factory=set)
    new_ids: set[str] = field(default_factory=set)


def _same(a: State, b: State) -> bool:
    if isinstance(a, _PlusOne):
        if set(a.models) != set(b.models):
            return False
        added = set(b.dictionaries) - a.old_ids
        return (
            a.old_ids <= set(b.dictionaries)
            and len(added) == 1
            and (not a.new_ids or added == a.new_ids)
        )
    return set(a.models) == set(b.models) and set(a.dictionaries) == set(b.dictionaries)


@pytest.fixture()
def rounds(model_root: Path, tmp_path: Path) -> Iterator[Rounds]:
    r = Rounds(tmp_path / "data", model_root, tmp_path / "scratch", random.Random(SEED))
    yield r
    if r.server is not None:
        r.server.terminate()
    print("\n".join(r.log))


def test_kill_9_leaves_old_or_new_state(rounds: Rounds) -> None:
    server = rounds.running()
    with rounds.client(server) as c:
        c.register_model("cs-lm", "tiny-llama", wait=True)
        [d] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "cs-lm"}, hook_points=[HOOK],
            corpus=pb.Corpus(texts=pb.TextList(texts=TEXTS[:20])),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=5),
        ))  # fmt: skip
        rounds.archive = c.export_dictionary(d.id)
        c.import_dictionary(archive_with_new_id(rounds.archive, "dict-00000000c0de"))
        state = observe(c)
    operations = [rounds.extract, rounds.delete, rounds.import_, rounds.register, rounds.startup]
    started = time.monotonic()
    for i in range(ROUNDS):
        first = i < len(operations)
        operation = operations[i] if first else rounds.rng.choice(operations)
        state = operation(state)
    print(f"{ROUNDS} kill -9 rounds in {time.monotonic() - started:.0f} s")


def test_a_model_file_turned_fifo_or_device_does_not_stop_the_restart(
    tmp_path: Path, model_root: Path
) -> None:
    """kill -9, then a registered model's weights become a FIFO and another's /dev/zero: the
    restart must still reach SERVING (its ready line), with those two FAILED and saying why and
    the intact one READY, and a later SIGTERM must still end the process."""
    root = tmp_path / "models"
    names = {"fifo": "tiny-gpt2", "device": "tiny-llama", "fine": "rnn-lstm"}
    for name, source in names.items():
        copy_model(model_root / source, root / name)
    data = tmp_path / "data"
    server = start_server(data, root)
    with Client.connect(server.address, timeout=120) as c:
        for name in names:
            c.register_model(name, name, wait=True)
    server.proc.kill()
    server.proc.wait(30)
    (root / "fifo" / "model.safetensors").unlink()
    os.mkfifo(root / "fifo" / "model.safetensors")
    (root / "device" / "model.safetensors").unlink()
    if os.geteuid() == 0:  # a real character device like /dev/zero (major 1, minor 5)
        os.mknod(root / "device" / "model.safetensors", 0o644 | 0o020000, os.makedev(1, 5))
    else:
        (root / "device" / "model.safetensors").symlink_to("/dev/zero")

    server = start_server(data, root)  # raises if the ready line never comes
    with Client.connect(server.address, timeout=60) as c:
        assert c.health() == "SERVING"
        models = {m.name: m for m in c.list_models()}
        assert {n: m.state for n, m in models.items()} == {
            "fifo": mp.MODEL_STATE_FAILED,
            "device": mp.MODEL_STATE_FAILED,
            "fine": mp.MODEL_STATE_READY,
        }
        assert "FIFO" in models["fifo"].state_reason
        assert "character device" in models["device"].state_reason
        c.unregister_model("fifo")
        assert c.register_model("again", "fine", wait=True).state == mp.MODEL_STATE_READY
    assert server.terminate() == 0
