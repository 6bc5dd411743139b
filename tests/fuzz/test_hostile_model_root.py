"""Hostile files in a model root: what a registration meets where weights, configs or tokenizers
should be. A FIFO blocks open() forever, /dev/zero reads forever, a sparse file can claim a
terabyte; none of them may hang a load, block another model's load, or be left registered.

Each attack is registered with wait=True against one server of this module's own (its root holds
the attacks): the answer must be FAILED_PRECONDITION naming the problem, well inside the call's
deadline (a hang shows as DEADLINE_EXCEEDED), nothing is left registered, and afterwards a valid
model still loads (nothing is stuck behind the attack).
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import models_pb2 as mp
from helpers.model_files import copy_model, write_safetensors
from support import ServerProcess, start_server

DEADLINE = 60.0  # a refusal takes well under a second; a hang runs into this

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device needs root")


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _zero_device(path: Path) -> None:
    """A character device like /dev/zero (major 1, minor 5): reads never end."""
    path.unlink(missing_ok=True)
    os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))


def _directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _device_link(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def _sparse_terabyte(path: Path) -> None:
    """A valid-looking header and 1 TiB of (sparse) zeros: larger than any machine's memory."""
    path.unlink(missing_ok=True)
    write_safetensors(path, {"w": ("U8", [1 << 40], 1 << 40)}, 1 << 40)


def _sparse_zeros(path: Path) -> None:
    """2 GiB of zeros, no header at all: hashing it would read every byte first."""
    path.unlink(missing_ok=True)
    with path.open("wb") as fh:
        fh.truncate(2 << 30)


# name -> (model to copy, file to replace, how, expected reason)
ATTACKS: dict[str, tuple[str, str, Callable[[Path], None], str]] = {
    "fifo-weights": ("rnn-elman", "model.safetensors", _fifo, "NOT_A_REGULAR_FILE"),
    "fifo-config": ("rnn-elman", "config.json", _fifo, "NOT_A_REGULAR_FILE"),
    "fifo-hf-weights": ("tiny-gpt2", "model.safetensors", _fifo, "NOT_A_REGULAR_FILE"),
    "fifo-tokenizer": ("tiny-llama", "tokenizer.json", _fifo, "NOT_A_REGULAR_FILE"),
    "fifo-tokenizer-config": ("tiny-llama", "tokenizer_config.json", _fifo, "NOT_A_REGULAR_FILE"),
    "fifo-generation": ("tiny-llama", "generation_config.json", _fifo, "NOT_A_REGULAR_FILE"),
    "fifo-next-to-gguf": ("gguf", "tokenizer_config.json", _fifo, "NOT_A_REGULAR_FILE"),
    "device-link-weights": ("tiny-llama", "model.safetensors", _device_link, "NOT_A_REGULAR_FILE"),
    "directory-weights": ("rnn-gru", "model.safetensors", _directory, "NOT_A_REGULAR_FILE"),
    "directory-tokenizer": ("tiny-gpt2", "tokenizer.json", _directory, "NOT_A_REGULAR_FILE"),
    "sparse-terabyte": ("rnn-lstm", "model.safetensors", _sparse_terabyte, "MODEL_TOO_LARGE"),
    "sparse-zeros": ("tiny-gpt2", "model.safetensors", _sparse_zeros, "BAD_SAFETENSORS"),
}
DEVICE_ATTACKS = {
    "zero-device-weights": ("rnn-elman", "model.safetensors", _zero_device, "NOT_A_REGULAR_FILE"),
    "zero-device-tokenizer": ("tiny-llama", "tokenizer.json", _zero_device, "NOT_A_REGULAR_FILE"),
}


@pytest.fixture(scope="module")
def hostile(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("hostile-models")
    copy_model(model_root / "rnn-elman", root / "valid")
    server = start_server(tmp_path_factory.mktemp("hostile-data"), root)
    yield server, root
    # SIGKILL: a server with a load stuck in a FIFO (the bug this pins) would not exit on SIGTERM.
    server.terminate(signal.SIGKILL)


def _attack(
    hostile: tuple[ServerProcess, Path], model_root: Path, name: str,
    attack: tuple[str, str, Callable[[Path], None], str],
) -> None:  # fmt: skip
    server, root = hostile
    source, victim, how, reason = attack
    target = copy_model(model_root / source, root / name)
    how(target / victim)
    path = f"{name}/tiny-llama.gguf" if source == "gguf" else name
    with Client.connect(server.address, timeout=DEADLINE) as c:
        started = time.monotonic()
        with pytest.raises(ChunkscopeError) as err:
            c.register_model(name, path, wait=True, timeout=DEADLINE)
        took = time.monotonic() - started
        assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION, (err.value, took)
        assert err.value.reason == reason, err.value.message
        if reason == "NOT_A_REGULAR_FILE":
            assert victim in err.value.message
        with pytest.raises(ChunkscopeError) as gone:
            c.get_model(name)
        assert gone.value.code is grpc.StatusCode.NOT_FOUND
        # Nothing is stuck behind the attack: a valid model loads.
        ok = c.register_model(f"ok-{name}", "valid", wait=True, timeout=DEADLINE)
        assert ok.state == mp.MODEL_STATE_READY, ok.state_reason
        c.unregister_model(ok.name)
        assert c.health() == "SERVING"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_hostile_model_file_is_refused_at_once(
    hostile: tuple[ServerProcess, Path], model_root: Path, name: str
) -> None:
    _attack(hostile, model_root, name, ATTACKS[name])


@needs_root
@pytest.mark.parametrize("name", sorted(DEVICE_ATTACKS))
def test_a_device_in_place_of_a_model_file_is_refused_at_once(
    hostile: tuple[ServerProcess, Path], model_root: Path, name: str
) -> None:
    _attack(hostile, model_root, name, DEVICE_ATTACKS[name])


def test_a_fifo_or_device_as_the_source_itself_is_refused(
    hostile: tuple[ServerProcess, Path],
) -> None:
    server, root = hostile
    _fifo(root / "pipe.gguf")
    _fifo(root / "pipe")
    with Client.connect(server.address, timeout=DEADLINE) as c:
        for path in ("pipe.gguf", "pipe"):
            with pytest.raises(ChunkscopeError) as err:
                c.register_model("pipe", path, wait=True, timeout=DEADLINE)
            assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION, err.value
            assert err.value.reason == "NOT_A_REGULAR_FILE", err.value.message
        # A link to a device outside the roots is refused for where it points.
        (root / "zero.gguf").unlink(missing_ok=True)
        (root / "zero.gguf").symlink_to("/dev/zero")
        with pytest.raises(ChunkscopeError) as err:
            c.register_model("zero", "zero.gguf", wait=True, timeout=DEADLINE)
        assert err.value.code is grpc.StatusCode.PERMISSION_DENIED


def test_a_fifo_registered_without_wait_blocks_no_other_load(
    hostile: tuple[ServerProcess, Path], model_root: Path
) -> None:
    """The report's sequence: the FIFO model without wait, then a valid one with wait."""
    server, root = hostile
    target = copy_model(model_root / "rnn-gru", root / "fifo-nowait")
    _fifo(target / "model.safetensors")
    with Client.connect(server.address, timeout=DEADLINE) as c:
        with pytest.raises(ChunkscopeError) as err:
            c.register_model("fifo-nowait", "fifo-nowait")  # refused before anything is stored
        assert err.value.reason == "NOT_A_REGULAR_FILE"
        ok = c.register_model("after-fifo", "valid", wait=True, timeout=DEADLINE)
        assert ok.state == mp.MODEL_STATE_READY, ok.state_reason
        assert [m.name for m in c.list_models()] == ["after-fifo"]
        c.unregister_model("after-fifo")
