"""ModelService through the generated client against a real server on a loopback port."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import models_pb2
from helpers.model_files import big_gpt2, mismatched_llama
from support import start_server

READY = models_pb2.MODEL_STATE_READY


@pytest.mark.parametrize(
    ("name", "path", "fmt", "arch", "blocks", "width"),
    [
        ("api-llama", "tiny-llama", models_pb2.MODEL_FORMAT_HF_SAFETENSORS, "llama", 2, 32),
        ("api-gpt2", "tiny-gpt2", models_pb2.MODEL_FORMAT_HF_SAFETENSORS, "gpt2", 2, 32),
        ("api-gguf", "gguf/tiny-llama.gguf", models_pb2.MODEL_FORMAT_GGUF, "llama", 2, 64),
        ("api-elman", "rnn-elman", models_pb2.MODEL_FORMAT_RECURRENT, "elman", 1, 12),
        ("api-gru", "rnn-gru", models_pb2.MODEL_FORMAT_RECURRENT, "gru", 1, 12),
        ("api-lstm", "rnn-lstm", models_pb2.MODEL_FORMAT_RECURRENT, "lstm", 1, 12),
    ],
)
def test_each_source_kind_registers_and_lists_its_hook_points(
    client: Client, name: str, path: str, fmt: int, arch: str, blocks: int, width: int
) -> None:
    model = client.register_model(name, path, wait=True)
    assert model.state == READY, model.state_reason
    assert (model.format, model.architecture, model.num_blocks) == (fmt, arch, blocks)
    assert model.content_hash.startswith("sha256:")
    assert model.parameter_count > 0 and model.load_seconds > 0
    assert model.hidden_size == width
    hook_points = client.list_hook_points(name)
    recurrent = arch in ("elman", "gru", "lstm")
    assert len(hook_points) == (1 if recurrent else 2 + 4 * blocks)
    assert all(list(p.shape) == [-1, -1, width] for p in hook_points)
    if recurrent:
        assert [p.name for p in hook_points] == ["rnn.hidden"]
        assert list(model.symbols) == list("ABCDE")
    else:
        names = [p.name for p in hook_points]
        assert names[0] == "embed" and names[-1] == "final_norm"
        assert names[1:5] == [
            f"blocks.0.{k}" for k in ("resid_pre", "attn_out", "mlp_out", "resid_post")
        ]
        assert [p.block for p in hook_points][1:5] == [0, 0, 0, 0]
    assert client.get_model(name) == model
    assert client.unregister_model(name).name == name
    with pytest.raises(ChunkscopeError) as err:
        client.get_model(name)
    assert err.value.code is grpc.StatusCode.NOT_FOUND


def _error(call, *args, **kwargs) -> ChunkscopeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def test_bad_requests_get_the_right_codes_and_leave_the_server_up(
    client: Client, outside_dir: object
) -> None:
    e = _error(client.register_model, "", "")
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in e.field_violations} == {"name", "source_path"}
    assert e.reason == "INVALID_ARGUMENT"

    e = _error(client.register_model, "UPPER case", "tiny-llama")
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and e.field_violations[0][0] == "name"

    e = _error(client.register_model, "m", "tiny-llama", dtype="float8")
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and e.field_violations[0][0] == "dtype"

    assert _error(client.get_model, "nobody").code is grpc.StatusCode.NOT_FOUND
    assert _error(client.unregister_model, "nobody").code is grpc.StatusCode.NOT_FOUND
    assert _error(client.list_hook_points, "nobody").code is grpc.StatusCode.NOT_FOUND
    assert _error(client.list_hook_points, "").code is grpc.StatusCode.INVALID_ARGUMENT

    for path in ("/etc", "escape", str(outside_dir), "../../../../etc"):
        e = _error(client.register_model, "outside", path)
        assert e.code is grpc.StatusCode.PERMISSION_DENIED, path
        assert e.reason == "OUTSIDE_MODEL_ROOTS"
    e = _error(client.register_model, "missing", "no-such-dir")
    assert e.code is grpc.StatusCode.NOT_FOUND

    e = _error(client.register_model, "pickled", "pickle-only")
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PICKLE_REFUSED")
    assert "safetensors" in e.message
    e = _error(client.register_model, "bert", "bert")
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UNSUPPORTED_ARCHITECTURE")
    assert "llama" in e.message

    client.register_model("dup", "rnn-elman", wait=True)
    e = _error(client.register_model, "dup", "rnn-gru", wait=True)
    assert e.code is grpc.StatusCode.ALREADY_EXISTS and "dup" in e.message
    client.unregister_model("dup")

    # None of the refused registrations was stored, and the server still answers.
    assert {m.name for m in client.list_models()}.isdisjoint(
        {"", "m", "outside", "missing", "pickled", "bert"}
    )
    assert client.health() == "SERVING"


def test_a_model_that_fails_to_load_is_failed_not_ready(client: Client, model_root: Path) -> None:
    # A weights file whose header does not describe it is refused before anything is stored.
    e = _error(client.register_model, "corrupt", "corrupt-llama")
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BAD_SAFETENSORS")
    # Well-formed files that fail to load (wrong shapes) turn the model FAILED.
    mismatched_llama(model_root / "tiny-llama", model_root / "mismatched-llama")
    model = client.register_model("corrupt", "mismatched-llama")  # no wait: returns LOADING
    assert model.state in (models_pb2.MODEL_STATE_LOADING, models_pb2.MODEL_STATE_FAILED)
    e = _error(client.register_model, "corrupt2", "mismatched-llama", wait=True)
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED")
    # With wait, the load error is the answer and nothing stays registered.
    assert _error(client.get_model, "corrupt2").code == grpc.StatusCode.NOT_FOUND
    deadline = time.monotonic() + 60
    while (failed := client.get_model("corrupt")).state == models_pb2.MODEL_STATE_LOADING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert failed.state == models_pb2.MODEL_STATE_FAILED and failed.state_reason
    e = _error(client.list_hook_points, "corrupt")
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_NOT_READY")
    client.unregister_model("corrupt")


def test_content_hash_pins_the_weights(client: Client) -> None:
    model = client.register_model("pinned", "rnn-lstm", wait=True)
    assert len(client.list_hook_points("pinned", content_hash=model.content_hash)) == 1
    e = _error(client.list_hook_points, "pinned", content_hash="sha256:" + "0" * 64)
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_HASH_MISMATCH")
    client.unregister_model("pinned")


def test_list_models_pages(client: Client) -> None:
    names = [f"page-{i}" for i in range(5)]
    for name in names:
        client.register_model(name, "rnn-elman", wait=True)
    listed = [m.name for m in client.list_models(page_size=2) if m.name.startswith("page-")]
    assert listed == names
    reply = client.models.ListModels(
        models_pb2.ListModelsRequest(page={"page_size": 2}), timeout=10
    )
    assert len(reply.models) == 2 and reply.page.next_page_token
    assert reply.page.total_size >= 5
    e = _error(
        client._call,
        client.models.ListModels,
        models_pb2.ListModelsRequest(page={"page_token": "garbage"}),
    )
    assert (
        e.code is grpc.StatusCode.INVALID_ARGUMENT and e.field_violations[0][0] == "page.page_token"
    )
    for name in names:
        client.unregister_model(name)


def test_unknown_enum_values_are_refused(client: Client) -> None:
    request = models_pb2.RegisterModelRequest(name="enum", source_path="rnn-elman", format=42)
    e = _error(client._call, client.models.RegisterModel, request)
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and e.field_violations[0][0] == "format"


def test_testbed_cli_writes_a_checkpoint_that_registers(client: Client, model_root) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    out = model_root / "testbed-reflection"
    run = subprocess.run(
        [sys.executable, "-m", "chunkscope", "testbed", "train", "--generator", "reflection",
         "--iterations", "30", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["vocab"] == list("ABCDE")
    model = client.register_model("testbed", "testbed-reflection", wait=True)
    assert (model.state, model.architecture, model.hidden_size) == (READY, "elman", 12)
    assert list(model.symbols) == list("ABCDE")
    client.unregister_model("testbed")


def test_register_without_dtype_takes_the_server_dtype_and_keeps_it(
    tmp_path: Path, model_root: Path
) -> None:
    """Empty dtype = the server's --dtype (the proto's promise), and a restart with another
    --dtype keeps what each registration resolved to (its dictionaries are bound to it)."""
    data = tmp_path / "data"
    server = start_server(data, model_root, "--dtype", "bfloat16")
    with Client.connect(server.address, timeout=120) as c:
        assert c.register_model("default", "rnn-elman", wait=True).dtype == "bfloat16"
        assert c.get_model("default").dtype == "bfloat16"
        asked = c.register_model("asked", "rnn-elman", dtype="float32", wait=True)
        assert asked.dtype == "float32"
        assert len(c.list_hook_points("default")) == 1
    server.terminate()
    server = start_server(data, model_root, "--dtype", "float32")
    with Client.connect(server.address, timeout=120) as c:
        models = {m.name: (m.state, m.dtype) for m in c.list_models()}
        assert models == {
            "default": (READY, "bfloat16"),
            "asked": (READY, "float32"),
        }
        assert c.register_model("later", "rnn-elman", wait=True).dtype == "float32"
    server.terminate()


def test_a_wait_abandoned_by_its_deadline_is_rolled_back(client: Client, model_root: Path) -> None:
    """The caller's deadline ends the wait while the weights are still being hashed: nothing may
    stay registered (not LOADING, not READY later), and the name is free at once."""
    big_gpt2(model_root / "tiny-gpt2", model_root / "slow-gpt2", padding=512 << 20)
    e = _error(client.register_model, "slow", "slow-gpt2", wait=True, timeout=0.3)
    assert e.code is grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 30
    while not _absent(client, "slow") and time.monotonic() < deadline:
        time.sleep(0.1)  # the server sees the cancellation a moment after the client
    assert _error(client.get_model, "slow").code is grpc.StatusCode.NOT_FOUND
    # The abandoned load may still be hashing in its thread; it blocks nothing.
    again = client.register_model("slow", "rnn-elman", wait=True, timeout=120)
    assert again.state == READY and again.source_path.endswith("rnn-elman")
    client.unregister_model("slow")


def _absent(client: Client, name: str) -> bool:
    return name not in {m.name for m in client.list_models()}


def test_language_models_registered_at_once_on_a_fresh_server_all_load(
    tmp_path: Path, model_root: Path
) -> None:
    """Loads run in threads of their own; the first ones in a process race transformers' lazy
    imports unless its part of a load is serialised ("cannot import name ..." otherwise)."""
    server = start_server(tmp_path / "data", model_root)
    sources = {"lm-a": "tiny-llama", "lm-b": "tiny-gpt2", "lm-c": "gguf/tiny-llama.gguf"}
    with Client.connect(server.address, timeout=120) as c:
        for name, source in sources.items():
            c.register_model(name, source)  # no wait: the loads overlap
        deadline = time.monotonic() + 300
        while any(m.state == models_pb2.MODEL_STATE_LOADING for m in c.list_models()):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        states = {m.name: (m.state, m.state_reason) for m in c.list_models()}
        assert states == {name: (READY, "") for name in sources}
    server.terminate()
