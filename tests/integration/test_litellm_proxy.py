"""The LiteLLM proxy from PyPI (build/litellm, `make litellm`) in front of chunkscope: chunkscope's
OpenAI-compatible front is its model and chunkscope's guard its guardrail (LiteLLM's own
`generic_guardrail_api`), called through the proxy with the OpenAI SDK, as an application would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from chunkscope_client import Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import guard_pb2 as gp
from support import ROOT, start_server

LITELLM = ROOT / "build" / "litellm" / "bin" / "litellm"
TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
TEMPLATE = (  # the tiny model has no chat template; an instruction-tuned model ships one
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
MASTER_KEY = "sk-chunkscope-test-master-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until_alive(url: str, proxy: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180  # the proxy imports a lot on 2 busy cores
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            pytest.fail(f"the LiteLLM proxy exited {proxy.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the LiteLLM proxy did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def proxy(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not LITELLM.exists():
        missing = f"{LITELLM} is missing (make test makes it: make litellm)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    work = tmp_path_factory.mktemp("litellm")
    shutil.copytree(model_root / "tiny-llama", work / "models" / "tiny-chat")
    (work / "models" / "tiny-chat" / "chat_template.jinja").write_text(TEMPLATE)
    http_port = free_port()
    server = start_server(work / "data", work / "models", "--http-port", str(http_port))
    token = os.environ["CHUNKSCOPE_TOKEN"]  # the session's admin key, trusted by the server
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("chat", "tiny-chat", wait=True)
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "chat"}, hook_points=["blocks.1.resid_post"],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        c.put_policy(
            gp.Policy(
                name="no-cats",
                model={"name": "chat"},
                rules=[
                    gp.PolicyRule(dictionary_id=pa.id, label="cat", action=gp.POLICY_ACTION_BLOCK)
                ],
            )
        )
    front = f"http://127.0.0.1:{http_port}"
    config = work / "litellm.yaml"
    config.write_text(f"""\
model_list:
  - model_name: tiny
    litellm_params:
      model: openai/chat
      api_base: {front}/v1
      api_key: {token}
guardrails:
  - guardrail_name: chunkscope-no-cats
    litellm_params:
      guardrail: generic_guardrail_api
      mode: pre_call
      default_on: true
      api_base: {front}
      headers:
        Authorization: "Bearer {token}"
      additional_provider_specific_params:
        policy: no-cats
""")  # fmt: skip
    port = free_port()
    log = work / "litellm.log"
    env = {
        "PATH": os.environ["PATH"], "HOME": str(work), "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
        "NO_PROXY": "127.0.0.1,localhost",
    }  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work,
        )  # fmt: skip
    try:
        _until_alive(f"http://127.0.0.1:{port}/health/liveliness", process, log)
        yield {"url": f"http://127.0.0.1:{port}/v1", "front": front, "log": log}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        server.terminate()


def test_the_proxy_serves_chunkscope_and_its_guardrail_blocks_the_concept(
    proxy: dict[str, Any],
) -> None:
    through = openai.OpenAI(base_url=proxy["url"], api_key=MASTER_KEY, max_retries=0, timeout=120)
    direct = openai.OpenAI(base_url=proxy["front"] + "/v1", api_key=os.environ["CHUNKSCOPE_TOKEN"],
                           max_retries=0, timeout=120)  # fmt: skip
    clean = [{"role": "user", "content": "A quiet morning without animals."}]
    answer = through.chat.completions.create(
        model="tiny", messages=clean, max_tokens=6, temperature=0
    )
    # The proxy's answer is chunkscope's: the same greedy completion as asking the front itself.
    same = direct.chat.completions.create(model="chat", messages=clean, max_tokens=6, temperature=0)
    assert answer.choices[0].message.content == same.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens == 6

    with pytest.raises(openai.APIStatusError) as refused:
        through.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": TRAIN[3]}], max_tokens=6
        )
    message = str(refused.value)
    assert "no-cats v1" in message and "cat" in message, message
