"""Hostile callers and a hostile key file: what an attacker near the server tries against auth.

Families: a key file that others may write, a link to someone else's keys, content the parser
chokes on, a FIFO that blocks whoever reads it (the server must fail closed, never answer
INTERNAL and never stop answering health); several `authorization` headers (one of them must not
silently win); a key revoked while its stream is open (the stream must stop answering).
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from fuzz_support import FuzzEnv
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chunkscope.auth import KeyFile
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import detection_pb2_grpc as dpg
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import models_pb2_grpc as mpg
from support import ServerProcess, start_server

WAIT = 15.0  # the server rereads the key file within a second; generous for a loaded machine


class Guarded:
    """A server that trusts a key file of its own, which the tests are free to break."""

    def __init__(self, server: ServerProcess, path: Path, keys: dict[str, str]) -> None:
        self.server, self.path, self.keys = server, path, keys
        self.good = path.read_bytes()
        self.channel = grpc.insecure_channel(server.address)

    def code(self, key: str, *, headers: int = 1) -> str:
        """The status of ListModels called with `key` (sent `headers` times)."""
        metadata = (("authorization", f"Bearer {key}"),) * headers
        try:
            mpg.ModelServiceStub(self.channel).ListModels(
                mp.ListModelsRequest(), metadata=metadata, timeout=10
            )
        except grpc.RpcError as err:
            return str(err.code().name)
        return "OK"

    def health(self) -> str:
        reply = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def replace(self, write: Callable[[Path], None]) -> None:
        """Put what `write` makes where the key file is, in one rename."""
        staged = self.path.with_name(".staged")
        if staged.exists() or staged.is_symlink():
            staged.unlink()
        write(staged)
        os.replace(staged, self.path)

    def restore(self) -> None:
        def good(path: Path) -> None:
            path.write_bytes(self.good)
            os.chmod(path, 0o600)

        self.replace(good)
        assert _until(lambda: self.code(self.keys["admin"]) == "OK") is True


def _until(probe: Callable[[], object], timeout: float = WAIT) -> object:
    """Poll `probe` until it is truthy (or the time is up); returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture(scope="module")
def guarded(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    directory = tmp_path_factory.mktemp("guarded")
    path = directory / "keys.json"
    keys = {role: KeyFile(path).create(role, f"hostile-{role}")[0] for role in ("admin", "monitor")}
    server = start_server(directory / "data", model_root, "--api-keys-file", str(path))
    guarded = Guarded(server, path, keys)
    assert guarded.code(keys["admin"]) == "OK"
    yield guarded
    guarded.channel.close()
    server.terminate()


def _world_writable(path: Path, good: bytes) -> None:
    path.write_bytes(good)
    os.chmod(path, 0o666)


def _deep_json(path: Path, good: bytes) -> None:
    path.write_bytes(b"[" * 100_000)
    os.chmod(path, 0o600)


def _fifo(path: Path, good: bytes) -> None:
    os.mkfifo(path, 0o600)


@pytest.mark.parametrize(
    ("attack", "logged"),
    [
        (_world_writable, "writable by group or others"),
        (_deep_json, "is not valid JSON"),
        (_fifo, "is not a regular file"),
    ],
    ids=["mode-0666", "json-nested-100000-deep", "fifo"],
)
def test_a_key_file_that_cannot_be_trusted_admits_no_one_and_health_still_answers(
    guarded: Guarded, attack: Callable[[Path, bytes], None], logged: str
) -> None:
    admin = guarded.keys["admin"]
    guarded.replace(lambda path: attack(path, guarded.good))
    try:
        assert _until(lambda: guarded.code(admin) == "UNAUTHENTICATED") is True
        # Closed, and stays closed (past the next reread): never INTERNAL, never the old keys.
        seen = set()
        for _ in range(12):
            seen.add(guarded.code(admin))
            time.sleep(0.2)
        assert seen == {"UNAUTHENTICATED"}
        assert guarded.health() == "SERVING"  # the event loop never waits on the key file
        assert logged in guarded.server.log()
    finally:
        guarded.restore()


def test_a_symlinked_key_file_is_not_followed(guarded: Guarded, tmp_path: Path) -> None:
    """A link to another key file used to admit that file's keys and refuse the real ones."""
    other = tmp_path / "other.json"
    intruder, _ = KeyFile(other).create("admin", "intruder")
    guarded.replace(lambda path: path.symlink_to(other))
    try:
        assert _until(lambda: guarded.code(guarded.keys["admin"]) == "UNAUTHENTICATED") is True
        assert guarded.code(intruder) == "UNAUTHENTICATED"
        assert "symbolic link" in guarded.server.log()
    finally:
        guarded.restore()
    assert guarded.code(intruder) == "UNAUTHENTICATED"


def test_several_authorization_headers_are_refused(guarded: Guarded) -> None:
    """The last header used to win: [bad, good] was OK and [admin, monitor] acted as monitor."""
    admin, monitor = guarded.keys["admin"], guarded.keys["monitor"]
    stub = mpg.ModelServiceStub(guarded.channel)
    register = mp.RegisterModelRequest(name="hostile", source_path="rnn-elman")
    for keys in ([admin, monitor], ["cks_000000000000_forged", admin], [admin, admin]):
        metadata = tuple(("authorization", f"Bearer {k}") for k in keys)
        with pytest.raises(grpc.RpcError) as err:
            stub.RegisterModel(register, metadata=metadata, timeout=30)
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "2 'authorization' metadata entries" in str(err.value.details())
    assert guarded.code(admin, headers=3) == "UNAUTHENTICATED"
    assert guarded.code(admin) == "OK"


def test_a_revoked_key_stops_its_open_stream(fuzz_env: FuzzEnv) -> None:
    """StreamDetect opened with a monitor key answered 20 of 20 inputs after `keys revoke`."""
    keys = KeyFile(Path(os.environ["CHUNKSCOPE_API_KEYS_FILE"]))  # the file the server trusts
    key, record = keys.create("monitor", "hostile-stream")
    metadata = (("authorization", f"Bearer {key}"),)
    models = mpg.ModelServiceStub(fuzz_env.channel)

    def admitted() -> bool:
        try:
            models.ListModels(mp.ListModelsRequest(), metadata=metadata, timeout=30)
        except grpc.RpcError:
            return False
        return True

    assert _until(admitted) is True  # the server has read the new key
    requests: queue.Queue[dp.StreamDetectRequest | None] = queue.Queue()

    def feed() -> Iterator[dp.StreamDetectRequest]:
        while (message := requests.get()) is not None:
            yield message

    config = dp.DetectionConfig(model={"name": "fz-lm"}, dictionary_ids=[fuzz_env.pa_id])
    replies = dpg.DetectionServiceStub(fuzz_env.channel).StreamDetect(
        feed(), metadata=metadata, timeout=120
    )
    text = dp.StreamDetectRequest(input=dp.DetectInput(text="the cat slept"))
    try:
        requests.put(dp.StreamDetectRequest(config=config))
        requests.put(text)
        assert next(replies).sequence == 0
        keys.revoke(record.id)
        answered, error = 0, None
        for _ in range(40):  # 10 s of inputs; the key file is reread within a second
            requests.put(text)
            try:
                next(replies)
            except grpc.RpcError as exc:
                error = exc
                break
            answered += 1
            time.sleep(0.25)
    finally:
        requests.put(None)
        replies.cancel()
    assert error is not None, f"the revoked key's stream answered all {answered} inputs"
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "no longer valid" in str(error.details())
    assert not admitted()  # new calls with the key are refused too
