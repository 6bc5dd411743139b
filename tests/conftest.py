"""Shared fixtures: a model root with tiny real models (and broken ones), and a running server."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chunkscope.auth import ROLES, KeyFile
from support import STARTED, ServerProcess, save_tiny_lm, start_server


def _session_keys() -> dict[str, str]:
    """Servers require API keys, as in production: one key per role in a session key file that
    every server the tests start trusts (CHUNKSCOPE_API_KEYS_FILE); clients default to the admin
    key (CHUNKSCOPE_TOKEN)."""
    directory = Path(tempfile.mkdtemp(prefix="chunkscope-test-keys-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    keys = KeyFile(directory / "keys.json")
    tokens = {role: keys.create(role, f"tests-{role}")[0] for role in ROLES}
    os.environ["CHUNKSCOPE_API_KEYS_FILE"] = str(keys.path)
    os.environ["CHUNKSCOPE_TOKEN"] = tokens["admin"]
    return tokens


API_KEYS = _session_keys()


@pytest.fixture(scope="session")
def api_keys() -> dict[str, str]:
    """role -> key, trusted by every server the tests start."""
    return API_KEYS


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test() -> Iterator[None]:
    """A failing test must not leave its servers running (the session server is kept)."""
    before = len(STARTED)
    yield
    for proc in STARTED[before:]:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(30)
    del STARTED[before:]


def _save_rnn(
    directory: Path, architecture: str, nonlinearity: str = "linear", hidden: int = 12
) -> Path:
    import torch

    from chunkscope.engine.recurrent import RecurrentConfig, RecurrentLM, save_checkpoint

    torch.manual_seed(0)
    config = RecurrentConfig(architecture, tuple("ABCDE"), hidden, nonlinearity)
    save_checkpoint(RecurrentLM(config), directory)
    return directory


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real tiny models (random weights) plus broken sources for the error paths."""
    root = tmp_path_factory.mktemp("models")
    save_tiny_lm(root / "tiny-llama", "llama")
    # tiny-llama with a chat template, as an instruction-tuned model ships chat_template.jinja.
    shutil.copytree(root / "tiny-llama", root / "tiny-chat")
    (root / "tiny-chat" / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    save_tiny_lm(root / "tiny-gpt2", "gpt2")
    _save_rnn(root / "rnn-elman", "elman")
    _save_rnn(root / "rnn-elman-tanh", "elman", "tanh")
    _save_rnn(root / "rnn-gru", "gru")
    _save_rnn(root / "rnn-lstm", "lstm")
    _save_rnn(root / "rnn-wide", "elman", hidden=96)
    from helpers.tiny_gguf import write_tiny_llama_gguf

    write_tiny_llama_gguf(root / "gguf" / "tiny-llama.gguf")

    pickled = root / "pickle-only"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")

    unsupported = root / "bert"
    unsupported.mkdir()
    (unsupported / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (unsupported / "model.safetensors").write_bytes(b"{}")

    corrupt = root / "corrupt-llama"
    corrupt.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (corrupt / name).write_bytes((root / "tiny-llama" / name).read_bytes())
    (corrupt / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")

    outside = tmp_path_factory.mktemp("outside")
    _save_rnn(outside / "rnn", "elman")
    (root / "escape").symlink_to(outside / "rnn")
    return root


@pytest.fixture(scope="session")
def outside_dir(model_root: Path) -> Path:
    return (model_root / "escape").resolve()


@pytest.fixture(scope="session")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the API tests (tests that restart servers start their own)."""
    proc = start_server(tmp_path_factory.mktemp("data"), model_root)
    yield proc
    proc.terminate()


@pytest.fixture()
def client(server: ServerProcess) -> Iterator[object]:
    from chunkscope_client import Client

    with Client.connect(server.address, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server on loopback for the session (`make test` installs it when
    missing); tests take a database each with `postgres.create_database(name)`."""
    from helpers.postgres import PostgresServer, bin_dir

    if bin_dir() is None:
        missing = "PostgreSQL is not installed (make test installs it: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Selenium (`make test` installs Debian's chromium and
    chromium-driver); `browser.driver` is the WebDriver."""
    from helpers.browser import Browser, binaries

    found = binaries()
    if found is None:
        missing = "chromium or chromedriver is not installed (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    chromium = Browser(*found)
    yield chromium
    chromium.close()
