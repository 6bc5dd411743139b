"""Property-based fuzzing of every RPC against a live server (hypothesis).

Requests are well-typed (real protobuf messages) but hostile: each RPC has a few valid base
requests, and the fuzzer either mutates one (1-3 fields set to hostile values: empty, huge,
negative, NaN/inf, unicode, unknown enum values, wrong ids, wrong hook points, path traversal,
tensors whose shape disagrees with their bytes, bad page tokens, extra or missing oneof members)
or builds a message from scratch out of the same value pools. After every request:

- the reply's code is never INTERNAL, UNKNOWN, DATA_LOSS or UNIMPLEMENTED;
- health still answers SERVING;
- no hook was left behind: a canary forward (Perturb without interventions) gives bit-for-bit the
  baseline next-token distribution with zero KL between its two passes (a leaked intervention
  hook would change it), and when the server exports a hook gauge (any /metrics series whose
  name contains "hook") it reads 0 while idle;
- a rejected request changed nothing stored: ListModels, ListDictionaries and GetDictionary (with
  prototypes) replies, the files under <data-dir>/dictionaries (sha256 each), the rows of the
  SQLite tables and keys.json are the same before and after. Requests that succeeded are undone
  (unregister, delete) and the same comparison then holds too.

CHUNKSCOPE_FUZZ_EXAMPLES sets hypothesis' max_examples per RPC (default 12: the CI portion, about
a minute on 2 cores). `make fuzz` runs e.g. CHUNKSCOPE_FUZZ_EXAMPLES=400. Runs with the default
are derandomised (the same requests each time); larger runs draw new ones.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import re
import sqlite3
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import numpy as np
import pytest
from fuzz_support import CODES, LM_HOOK, SENT, TRAIN, FuzzEnv, create_key, keys_cli_available
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import detection_pb2_grpc as dpg
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import dictionaries_pb2_grpc as pbg
from chunkscope_client.v1 import guard_pb2 as gp
from chunkscope_client.v1 import guard_pb2_grpc as gpg
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import models_pb2_grpc as mpg
from chunkscope_client.v1 import perturbation_pb2 as pp
from chunkscope_client.v1 import perturbation_pb2_grpc as ppg

try:  # AnalysisService is being added; fuzz it when its stubs exist
    from chunkscope_client.v1 import analysis_pb2 as ap
    from chunkscope_client.v1 import analysis_pb2_grpc as apg
except ImportError:  # pragma: no cover
    ap = apg = None

DEFAULT_EXAMPLES = 12
EXAMPLES = int(os.environ.get("CHUNKSCOPE_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= DEFAULT_EXAMPLES,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
FORBIDDEN = {"INTERNAL", "UNKNOWN", "DATA_LOSS", "UNIMPLEMENTED"}
UNARY_TIMEOUT, STREAM_TIMEOUT = 60.0, 90.0
NAN, INF = float("nan"), float("inf")

# ----- value pools --------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "\x00abc",
    "\n\n\n",
    "\u202e\u200b\ufeff",
    "é😀👩‍👩‍👧",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "../../etc/passwd",
    "/etc/passwd",
    "%s%n%x",
    "' OR 1=1 --",
    "<script>",
    "a" * 300,
    "x" * 20_000,
    "😀" * 3000,
    "cat " * 3000,
]
I32_EDGES = [0, 1, -1, 2, 7, 255, 256, 1000, 2**31 - 1, -(2**31), 2**16]
I64_EDGES = [0, 1, -1, 2**63 - 1, -(2**63), 2**32, 2**40]
F64_EDGES = [0.0, -0.0, NAN, INF, -INF, 1e308, -1e308, 5e-324, 1.0, 0.5, -1.0, 2.0, 1e-12]
# Fields whose value multiplies work: drawn mostly small; the extremes must be refused.
COST_FIELDS = {
    "max_new_tokens",
    "epochs",
    "n_iter",
    "iters",
    "max_iter",
    "restarts",
    "max_rounds",
    "n_new_chunks",
    "k",
    "n_bins",
    "max_samples",
    "max_fit_states",
    "pca_dim",
    "rank",
    "n_delays",
    "delay_interval",
    "n_groups",
    "n_samples",
    "cv_folds",
    "top_k",
    "batch_size",
}
COST_VALUES = [0, 1, 2, 3, 8, -1, -(2**31), 2**31 - 1, 100_000, 10**9]

# Temperatures whose division overflows the logits (once INTERNAL, now greedy decoding), pinned by
# test_tiny_temperature and part of the temperature pool.
TINY_TEMPERATURES = [5e-324, 1e-40]
FLOAT_POOLS = {
    "temperature": st.one_of(
        st.sampled_from(
            [
                0.0,
                -0.0,
                0.5,
                1.0,
                2.0,
                10.0,
                10.000001,
                -1.0,
                NAN,
                INF,
                -INF,
                1e-12,
                *TINY_TEMPERATURES,
            ]
        ),
        st.floats(1e-6, 20),
    )
}
i32 = st.one_of(st.sampled_from(I32_EDGES), st.integers(-(2**31), 2**31 - 1))
i64 = st.one_of(st.sampled_from(I64_EDGES), st.integers(-(2**63), 2**63 - 1))
f64 = st.one_of(st.sampled_from(F64_EDGES), st.floats())
text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))


BAD_PATHS = ["a" * 5000, "a/" * 3000, "~nosuchuser/x"]


def b64(raw: str | bytes) -> str:
    return base64.urlsafe_b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


# Page tokens whose offset does not fit SQLite's integer (were INTERNAL: fixed in b6c883e).
OUT_OF_RANGE_TOKENS = [
    b64("o:-99999999999999999999"),
    b64("o:" + "9" * 30),
    b64("o:" + str(2**63)),
    b64("o:" + str(2**64)),
]
PAGE_TOKENS = [
    "",
    "!!!",
    "====",
    b64("o:-1"),
    b64("o:1e9"),
    b64("o:"),
    b64("fz-lm"),
    b64("zzz"),
    b64("../x"),
    b64(b"\xff\xfe"),
    b64("o:2147483648"),
    b64("o:-2147483649"),
    "o:1",
    "\x00",
    "é",
    *OUT_OF_RANGE_TOKENS,
]


def _pools(env: FuzzEnv) -> dict[str, st.SearchStrategy[Any]]:
    """Value pools by field name: the right kind of value, often the wrong one."""
    models = st.sampled_from(
        ["fz-lm", "fz-rnn", "fz-chat", "fz-gpt2", "", "nope", "FZ-LM", "fz-lm ", "a" * 65]
    )
    hooks = st.sampled_from(
        [
            *env.lm_hooks,
            "rnn.hidden",
            "",
            "blocks.99.resid_post",
            "blocks.-1.resid_post",
            "blocks.1.resid_post\x00",
            "BLOCKS.1.RESID_POST",
            "embed.",
            "blocks",
        ]
    )
    ids = st.one_of(
        st.sampled_from(
            [
                env.pa_id,
                env.dsc_id,
                "dict-000000000000",
                "",
                "dict-",
                "dict-../../../etc",
                env.pa_id.upper(),
                env.pa_id + "0",
                "../dictionaries/" + env.pa_id,
                ".",
            ]
        ),
        st.from_regex(r"\Adict-[0-9a-f]{12}\Z"),
    )
    paths = st.sampled_from(
        [
            "tiny-llama",
            "tiny-gpt2",
            "rnn-elman",
            "rnn-gru",
            "rnn-lstm",
            "gguf/tiny-llama.gguf",
            "pickle-only",
            "bert",
            "corrupt-llama",
            "escape",
            "escape/config.json",
            "",
            ".",
            "/",
            "..",
            "../",
            "../../etc/passwd",
            "/etc/passwd",
            "/proc/self/environ",
            "tiny-llama/../..",
            "tiny-llama/config.json",
            "nope",
            "a" * 200,
            "a/" * 100,
            *BAD_PATHS,
            "tiny-llama\x00",
            "~/x",
            "/dev/zero",
            "corpus.txt",
            "corpora/../../registry.sqlite3",
            str(env.server.data_dir / "registry.sqlite3"),
            str(env.server.data_dir),
        ]
    )
    labels = st.sampled_from(["cat", "cake", "zebra", "", "CAT", "cat\x00", "a" * 100])
    symbols = st.sampled_from(["A", "B", "C", "D", "E", "Z", "", "AB", "a", "😀"])
    hashes = st.sampled_from(["", "sha256:", "sha256:" + "0" * 64, "md5:x", "x" * 200])
    dtypes = st.sampled_from(
        ["", "float32", "float16", "bfloat16", "float64", "int8", "auto", "FLOAT32", "\x00"]
    )
    texts = st.one_of(st.sampled_from(TRAIN[:3] + HOSTILE_TEXT), st.text(max_size=80))
    return {
        "name": models,
        "model": models,
        "hook_point": hooks,
        "hook_points": hooks,
        "dictionary_id": ids,
        "dictionary_ids": ids,
        "detect_dictionary_ids": ids,
        "id": ids,
        "source_path": paths,
        "path": paths,
        "page_token": st.sampled_from(PAGE_TOKENS),
        "label": labels,
        "labels": labels,
        "concept": labels,
        "words": labels,
        "texts": texts,
        "text": texts,
        "symbols": symbols,
        "sha256": hashes,
        "content_hash": hashes,
        "dtype": dtypes,
        "target_tokens": st.sampled_from(
            ["cat", " cat", "", "A", "the cat", "😀", "<|endoftext|>"]
        ),
        "policy": st.sampled_from(
            [POLICY, "", "fz-nope", "FZ-POLICY", POLICY + "\x00", "a" * 65, "-x", "fz-lm"]
        ),
        "role": st.sampled_from(["user", "system", "assistant", "", "\x00", "a" * 65, "😀"]),
        "roles": st.sampled_from(["user", "assistant", "", "a" * 65]),
        "content": texts,
        "description": texts,
    }


def _tensor_bytes(draw: Callable[[Any], Any]) -> bytes:
    width = draw(st.sampled_from([32, 12, 1, 0, 33, 7]))
    fill = draw(st.sampled_from([0.0, 1.0, NAN, INF, -INF, 1e38]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.uint8]))
    arr = (
        np.full(width, fill).astype(dtype)
        if np.issubdtype(dtype, np.floating)
        else np.ones(width, dtype)
    )
    return draw(st.one_of(st.just(arr.tobytes()), st.binary(max_size=200)))


def _scalar(draw: Callable[[Any], Any], f: FieldDescriptor, pools: dict[str, Any]) -> Any:
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return draw(pools[f.name]) if f.name in pools else draw(text)
    if t == FieldDescriptor.TYPE_BYTES:
        return _tensor_bytes(draw)
    if t == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = draw(FLOAT_POOLS.get(f.name, f64))
        if t == FieldDescriptor.TYPE_FLOAT and math.isfinite(value) and abs(value) > 3e38:
            value = math.copysign(INF, value)
        return value
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        return draw(st.sampled_from([*known, -1, 99, 2**31 - 1]))
    wide = t in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    )
    if f.name in COST_FIELDS:
        value = draw(st.sampled_from(COST_VALUES))
        return value if wide or -(2**31) <= value < 2**31 else 2**31 - 1
    if f.name == "shape":
        return draw(st.sampled_from([32, 12, 1, 0, -1, 2, 2**40, 2**62, 3]))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64):
        return draw(st.integers(0, 2**32 - 1))
    return draw(i64 if wide else i32)


def _field_value(
    draw: Callable[[Any], Any], f: FieldDescriptor, pools: dict[str, Any], depth: int
) -> Any:
    many = f.is_repeated
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        if f.message_type.GetOptions().map_entry:
            return None
        one = lambda: _random_message(draw, f.message_type, pools, depth + 1)  # noqa: E731
        if many:
            size = draw(st.sampled_from([0, 1, 2, 3, 3, 40]) if depth < 2 else st.integers(0, 2))
            if size == 40:
                item = one()
                return [item] * size
            return [one() for _ in range(size)]
        return one()
    if many:
        size = draw(st.sampled_from([0, 1, 2, 3, 17, 300]))
        if size > 3:
            return [_scalar(draw, f, pools)] * size
        return [_scalar(draw, f, pools) for _ in range(size)]
    return _scalar(draw, f, pools)


def _random_message(
    draw: Callable[[Any], Any], descriptor: Any, pools: dict[str, Any], depth: int = 0
) -> Message:
    """A message of `descriptor`'s type with a random subset of fields set from the pools."""
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(descriptor)()
    if depth > 5:
        return msg
    for f in descriptor.fields:
        if not draw(st.booleans()):
            continue
        _assign(msg, f, _field_value(draw, f, pools, depth))
    return msg


def _assign(msg: Message, f: FieldDescriptor, value: Any) -> None:
    if value is None:
        return
    if f.is_repeated:
        container = getattr(msg, f.name)
        del container[:]
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                container.add().CopyFrom(item)
        else:
            container.extend(value)
    elif f.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(msg, f.name).CopyFrom(value)
    else:
        setattr(msg, f.name, value)


def _mutate(draw: Callable[[Any], Any], msg: Message, pools: dict[str, Any]) -> None:
    """Set one field somewhere in `msg` (walking into sub-messages) to a hostile value."""
    current = msg
    for _ in range(6):
        fields = [f for f in current.DESCRIPTOR.fields]
        if not fields:
            return
        f = draw(st.sampled_from(fields))
        singular_msg = f.type == FieldDescriptor.TYPE_MESSAGE and not f.is_repeated
        if singular_msg and draw(st.booleans()):
            current = getattr(current, f.name)
            current.SetInParent()
            continue
        if draw(st.integers(0, 9)) == 0:
            current.ClearField(f.name)
        else:
            _assign(current, f, _field_value(draw, f, pools, 1))
        return


@st.composite
def requests(draw: Callable[[Any], Any], bases: list[Message], env: FuzzEnv) -> Message:
    pools = _pools(env)
    if draw(st.integers(0, 4)) == 0:
        return _random_message(draw, bases[0].DESCRIPTOR, pools)
    msg = type(bases[0])()
    msg.CopyFrom(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        _mutate(draw, msg, pools)
    return msg


# ----- calling and checking ----------------------------------------------------------------------


def _short(msg: Any) -> str:
    return re.sub(r"\s+", " ", str(msg))[:600]


def send(env: FuzzEnv, rpc: str, fn: Callable[[], Any], request: Any) -> tuple[str, Any]:
    """Run one call; returns (code name, result). Fails on a forbidden code."""
    SENT[rpc] += 1
    try:
        result = fn()
        code = "OK"
    except grpc.RpcError as error:
        code, result = error.code().name, error
    CODES[code] += 1
    if code in FORBIDDEN:
        details = result.details() if isinstance(result, grpc.RpcError) else ""
        pytest.fail(f"{rpc} -> {code}: {details}\nrequest: {_short(request)}")
    return code, result


def snapshot(env: FuzzEnv) -> dict[str, Any]:
    """Everything stored, as the API shows it and as it lies on disk."""
    md, ch = env.metadata, env.channel
    models_stub, dicts_stub = mpg.ModelServiceStub(ch), pbg.DictionaryServiceStub(ch)
    models, token = [], ""
    while True:
        reply = models_stub.ListModels(
            mp.ListModelsRequest(page=common_pb2.PageRequest(page_size=100, page_token=token)),
            timeout=UNARY_TIMEOUT,
            metadata=md,
        )
        for m in reply.models:
            m.ClearField("load_seconds")
            models.append(m.SerializeToString(deterministic=True))
        token = reply.page.next_page_token
        if not token:
            break
    listed = dicts_stub.ListDictionaries(
        pb.ListDictionariesRequest(page=common_pb2.PageRequest(page_size=1000)),
        timeout=UNARY_TIMEOUT,
        metadata=md,
    )
    dictionaries = {}
    for d in listed.dictionaries:
        full = dicts_stub.GetDictionary(
            pb.GetDictionaryRequest(id=d.id, include_prototypes=True),
            timeout=UNARY_TIMEOUT,
            metadata=md,
        ).dictionary
        dictionaries[d.id] = (
            d.SerializeToString(deterministic=True),
            full.SerializeToString(deterministic=True),
        )
    policies = [
        p.SerializeToString(deterministic=True)
        for p in gpg.GuardServiceStub(ch)
        .ListPolicies(
            gp.ListPoliciesRequest(page=common_pb2.PageRequest(page_size=1000)),
            timeout=UNARY_TIMEOUT,
            metadata=md,
        )
        .policies
    ]
    data_dir = env.server.data_dir
    files = {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(env.work_dir.rglob("*"))
        if p.is_file()
    }
    keys = data_dir / "keys.json"
    if keys.exists():
        files["keys.json"] = hashlib.sha256(keys.read_bytes()).hexdigest()
    return {
        "models": models,
        "dictionaries": dictionaries,
        "policies": policies,
        "files": files,
        "tables": _tables(env),
    }


def _tables(env: FuzzEnv) -> dict[str, list[Any]]:
    """The store's rows as they are stored (tensors by digest, for PostgreSQL)."""
    if env.store:
        import psycopg

        with psycopg.connect(env.store) as pg:
            return {
                "models": pg.execute("SELECT * FROM models ORDER BY 1").fetchall(),
                "dictionaries": pg.execute(
                    "SELECT id, model_name, model_hash, hook_point, method, created_at, n_entries,"
                    " md5(manifest), md5(tensors), tensors_sha256 FROM dictionaries ORDER BY 1"
                ).fetchall(),
            }
    db = sqlite3.connect(f"file:{env.server.data_dir / 'registry.sqlite3'}?mode=ro", uri=True)
    try:
        return {
            t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("models", "dictionaries")
        }
    finally:
        db.close()


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What differs, item by item (not truncated reprs of whole snapshots)."""
    out = []
    for key in before:
        old, new = before[key], after[key]
        if old == new:
            continue
        if isinstance(old, dict):
            gone = {k: old[k] for k in old.keys() - new.keys()}
            added = {k: new[k] for k in new.keys() - old.keys()}
            changed = {k: (old[k], new[k]) for k in old.keys() & new.keys() if old[k] != new[k]}
            out.append(f"{key}: removed {gone}, added {added}, changed {changed}")
        elif isinstance(old, list):
            removed = [x for x in old if x not in new]
            added = [x for x in new if x not in old]
            out.append(f"{key}: removed {removed}, added {added}")
        else:
            out.append(f"{key}: before {old!r} after {new!r}")
    return "\n".join(line[:3000] for line in out)


POLICY = "fz-policy"  # the fixture's policy (Check aims at it; never deleted or replaced)


_CANARY = pp.PerturbRequest(
    model=common_pb2.ModelRef(name="fz-lm"),
    input=dp.DetectInput(text="The cat sat on the mat"),
    top_k=5,
)


def canary(env: FuzzEnv) -> list[tuple[int, float]]:
    """Next-token distribution of a fixed prompt; a leaked intervention hook would change it."""
    reply = ppg.PerturbationServiceStub(env.channel).Perturb(
        _CANARY, timeout=UNARY_TIMEOUT, metadata=env.metadata
    )
    before = [(t.token_id, round(t.logprob, 5)) for t in reply.top_before]
    after = [(t.token_id, round(t.logprob, 5)) for t in reply.top_after]
    assert before == after and abs(reply.kl_divergence) < 1e-9, (
        f"a request without interventions changed the output: leaked hook? {before} {after}"
    )
    return before


def hook_gauges(env: FuzzEnv) -> dict[str, float]:
    """Any exported metric about hooks (e.g. a count of attached hooks), by series."""
    if not env.server.metrics_port:
        return {}
    url = f"http://127.0.0.1:{env.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = reply.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line and not line.startswith("#") and "hook" in line.split("{")[0].split(" ")[0]
    }


def check_server(env: FuzzEnv) -> None:
    health = health_pb2_grpc.HealthStub(env.channel).Check(
        health_pb2.HealthCheckRequest(), timeout=UNARY_TIMEOUT
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    baseline = env.extra.setdefault("canary", canary(env))
    assert canary(env) == baseline, "canary distribution changed: a hook leaked or state changed"
    leaked = {k: v for k, v in hook_gauges(env).items() if v != 0}
    assert not leaked, f"hooks left attached while idle: {leaked}"


@pytest.fixture(scope="module")
def env(fuzz_env: FuzzEnv) -> FuzzEnv:
    from chunkscope_client import Client

    with Client.connect(fuzz_env.server.address, timeout=120) as c:
        c._metadata = fuzz_env.metadata
        if "fz-gpt2" not in [m.name for m in c.list_models()]:
            c.register_model("fz-gpt2", "tiny-gpt2", wait=True)
        if POLICY not in [p.name for p in c.list_policies()]:
            c.put_policy(_policy(fuzz_env))
    fuzz_env.protected_models = ("fz-lm", "fz-rnn", "fz-chat", "fz-gpt2")
    fuzz_env.extra["snapshot"] = snapshot(fuzz_env)
    check_server(fuzz_env)
    return fuzz_env


def _undo(env: FuzzEnv, rpc: str, request: Any, result: Any) -> None:
    """Undo a request that succeeded, so the stored state is the fixture's again."""
    md, ch = env.metadata, env.channel
    if rpc == "RegisterModel":
        stub = mpg.ModelServiceStub(ch)
        deadline = time.monotonic() + 120
        while True:
            try:
                stub.UnregisterModel(
                    mp.UnregisterModelRequest(name=request.name), timeout=UNARY_TIMEOUT, metadata=md
                )
                return
            except grpc.RpcError as error:
                if (
                    error.code() != grpc.StatusCode.FAILED_PRECONDITION
                    or time.monotonic() > deadline
                ):
                    raise
                time.sleep(0.2)
    if rpc == "PutPolicy":
        gpg.GuardServiceStub(ch).DeletePolicy(
            gp.DeletePolicyRequest(name=request.policy.name), timeout=UNARY_TIMEOUT, metadata=md
        )
        return
    ids: Iterable[str] = ()
    if rpc == "ExtractDictionary":
        ids = [d.id for m in result if m.HasField("result") for d in m.result.dictionaries]
    elif rpc == "ImportDictionary":
        ids = [result.dictionary.id]
    for dictionary_id in ids:
        pbg.DictionaryServiceStub(ch).DeleteDictionary(
            pb.DeleteDictionaryRequest(id=dictionary_id), timeout=UNARY_TIMEOUT, metadata=md
        )


def exercise(env: FuzzEnv, rpc: str, fn: Callable[[], Any], request: Any) -> str:
    """Send, then check the invariants; returns the code."""
    before = env.extra["snapshot"]
    code, result = send(env, rpc, fn, request)
    if code == "OK":
        _undo(env, rpc, request, result)
    check_server(env)
    after = snapshot(env)
    diff = _diff(before, after)
    env.extra["snapshot"] = after  # one failure must not fail every later request too
    assert not diff, (
        f"{rpc} -> {code} left stored data changed"
        f"{' (after undoing it)' if code == 'OK' else ''}:\n{diff}\nrequest: {_short(request)}"
    )
    return code


# ----- one property per RPC -------------------------------------------------------------------


def _ref(name: str = "fz-lm") -> common_pb2.ModelRef:
    return common_pb2.ModelRef(name=name)


def _policy(env: FuzzEnv, name: str = POLICY) -> gp.Policy:
    inhibit = pp.Intervention(
        chunk=pp.ChunkRef(dictionary_id=env.pa_id, entry_id=0),
        mode=pp.INTERVENTION_MODE_INHIBIT,
        positions=pp.Positions(generated=True),
    )
    return gp.Policy(
        name=name,
        model=_ref(),
        rules=[
            gp.PolicyRule(dictionary_id=env.pa_id, label="cat", action=gp.POLICY_ACTION_BLOCK),
            gp.PolicyRule(
                dictionary_id=env.pa_id,
                label="cake",
                min_tokens=2,
                score_threshold=1.0,
                action=gp.POLICY_ACTION_INTERVENE,
                interventions=[inhibit],
                input_types=[gp.INPUT_TYPE_RESPONSE],
            ),
        ],
        roles=["user"],
    )


def _bases(env: FuzzEnv) -> dict[str, list[Message]]:
    pa, dsc = env.pa_id, env.dsc_id
    config = dp.DetectionConfig(model=_ref(), dictionary_ids=[pa])
    chunk = pp.Intervention(
        chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
        mode=pp.INTERVENTION_MODE_ACTIVATE,
        positions=pp.Positions(indices=[-1]),
    )
    vector = pp.Intervention(
        vector=common_pb2.Tensor(
            dtype=common_pb2.DTYPE_FLOAT32, shape=[32], data=np.ones(32, np.float32).tobytes()
        ),
        mode=pp.INTERVENTION_MODE_ADD,
        hook_point=LM_HOOK,
        alpha=1.0,
        positions=pp.Positions(all_prompt=True, generated=True),
    )
    rnn_input = dp.DetectInput(symbols=pb.SymbolSequence(symbols=list("EABCDE")))
    chat = [
        pp.ChatPromptMessage(role="system", content="user"),
        pp.ChatPromptMessage(role="user", content="On day 3 the cat slept"),
    ]
    tail_vector = pp.Intervention()
    tail_vector.CopyFrom(vector)
    tail_vector.positions.CopyFrom(
        pp.Positions(message_tail=pp.MessageTokens(message_index=-1, count=3, skip_last=1))
    )
    return {
        "PutPolicy": [
            gp.PutPolicyRequest(policy=_policy(env, "fz-new-policy")),
            gp.PutPolicyRequest(policy=_policy(env, "fz-new-policy"), expected_version=0),
        ],
        "GetPolicy": [
            gp.GetPolicyRequest(name=POLICY),
            gp.GetPolicyRequest(name=POLICY, version=1),
        ],
        "ListPolicies": [
            gp.ListPoliciesRequest(page=common_pb2.PageRequest(page_size=1)),
            gp.ListPoliciesRequest(name=POLICY),
        ],
        "DeletePolicy": [gp.DeletePolicyRequest(name="fz-unknown-policy", expected_version=1)],
        "Check": [
            gp.CheckRequest(policy=POLICY, input_type=gp.INPUT_TYPE_REQUEST, texts=[TRAIN[0]]),
            gp.CheckRequest(
                policy=POLICY,
                policy_version=1,
                input_type=gp.INPUT_TYPE_RESPONSE,
                messages=[gp.ChatMessage(role="user", content=TRAIN[1])],
            ),
        ],
        "RegisterModel": [
            mp.RegisterModelRequest(name="fz-new", source_path="rnn-gru", wait=True),
            mp.RegisterModelRequest(name="fz-new2", source_path="tiny-gpt2", dtype="bfloat16"),
        ],
        "GetModel": [mp.GetModelRequest(name="fz-lm")],
        "ListModels": [mp.ListModelsRequest(page=common_pb2.PageRequest(page_size=1))],
        "UnregisterModel": [mp.UnregisterModelRequest(name="fz-unknown")],
        "ListHookPoints": [mp.ListHookPointsRequest(model=_ref())],
        "ExtractDictionary": [
            pb.ExtractDictionaryRequest(
                model=_ref(),
                hook_points=[LM_HOOK],
                corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
                population_averaging=pb.PopulationAveragingParams(
                    concepts=[pb.ConceptWords(concept="cat")], n_samples=5, min_occurrences=3
                ),
            ),
            pb.ExtractDictionaryRequest(
                model=_ref("fz-rnn"),
                hook_points=["rnn.hidden"],
                corpus=pb.Corpus(
                    sequences=pb.SequenceList(
                        sequences=[pb.SymbolSequence(symbols=list("EABCDEEABCDE" * 5))]
                    )
                ),
                discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(n_iter=3),
            ),
            pb.ExtractDictionaryRequest(
                model=_ref(),
                hook_points=[LM_HOOK],
                corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
                cosine_dictionary=pb.CosineDictionaryParams(k=4, epochs=2),
            ),
            pb.ExtractDictionaryRequest(
                model=_ref(),
                hook_points=[LM_HOOK],
                corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
                density_chunks=pb.DensityChunksParams(min_cluster_size=5, pca_dim=4),
            ),
        ],
        "GetDictionary": [
            pb.GetDictionaryRequest(id=pa, include_prototypes=True),
            pb.GetDictionaryRequest(id=dsc),
        ],
        "ListDictionaries": [
            pb.ListDictionariesRequest(model="fz-lm", page=common_pb2.PageRequest(page_size=1))
        ],
        "DeleteDictionary": [pb.DeleteDictionaryRequest(id="dict-000000000000")],
        "ExportDictionary": [pb.ExportDictionaryRequest(id=pa)],
        "Detect": [
            dp.DetectRequest(config=config, inputs=[dp.DetectInput(text=TRAIN[0])]),
            dp.DetectRequest(
                config=dp.DetectionConfig(model=_ref("fz-rnn"), dictionary_ids=[dsc]),
                inputs=[rnn_input],
            ),
        ],
        "StreamDetect": [
            dp.StreamDetectRequest(config=config),
            dp.StreamDetectRequest(input=dp.DetectInput(text="the cat")),
            dp.StreamDetectRequest(input=dp.DetectInput(text=" slept"), continues=True),
        ],
        "Perturb": [
            pp.PerturbRequest(
                model=_ref(),
                input=dp.DetectInput(text="The cat"),
                interventions=[chunk],
                target_tokens=["cat"],
                top_k=3,
            ),
            pp.PerturbRequest(
                model=_ref(), input=dp.DetectInput(text="The cat"), interventions=[vector]
            ),
            pp.PerturbRequest(model=_ref("fz-rnn"), input=rnn_input, target_tokens=["A"]),
            pp.PerturbRequest(  # chat messages, the template applied server-side
                model=_ref("fz-chat"),
                messages=chat,
                interventions=[tail_vector],
                target_tokens=["cat"],
                add_generation_prompt=False,
            ),
        ],
        "Generate": [
            pp.GenerateRequest(
                model=_ref(),
                prompt=dp.DetectInput(text="The cat"),
                interventions=[chunk, vector],
                sampling=pp.SamplingParams(max_new_tokens=3, temperature=0.7, top_p=0.9, top_k=5),
                control=True,
                detect_dictionary_ids=[pa],
                rules=[
                    pp.DetectionRule(
                        when=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                        inhibit=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                    )
                ],
            ),
            pp.GenerateRequest(
                model=_ref("fz-rnn"), prompt=rnn_input, sampling=pp.SamplingParams(max_new_tokens=2)
            ),
            pp.GenerateRequest(
                model=_ref("fz-chat"),
                messages=chat,
                interventions=[tail_vector],
                sampling=pp.SamplingParams(max_new_tokens=3, temperature=0.7, seed=1),
                control=True,
            ),
        ],
    }


def _unary(env: FuzzEnv, method: Any) -> Callable[[Message], Callable[[], Any]]:
    return lambda request: lambda: method(request, timeout=UNARY_TIMEOUT, metadata=env.metadata)


def _server_stream(env: FuzzEnv, method: Any) -> Callable[[Message], Callable[[], Any]]:
    return lambda request: (
        lambda: list(method(request, timeout=STREAM_TIMEOUT, metadata=env.metadata))
    )


def _callers(env: FuzzEnv) -> dict[str, Callable[[Message], Callable[[], Any]]]:
    ch = env.channel
    m, d = mpg.ModelServiceStub(ch), pbg.DictionaryServiceStub(ch)
    det, per = dpg.DetectionServiceStub(ch), ppg.PerturbationServiceStub(ch)
    guard = gpg.GuardServiceStub(ch)
    return {
        "PutPolicy": _unary(env, guard.PutPolicy),
        "GetPolicy": _unary(env, guard.GetPolicy),
        "ListPolicies": _unary(env, guard.ListPolicies),
        "DeletePolicy": _unary(env, guard.DeletePolicy),
        "Check": _unary(env, guard.Check),
        "RegisterModel": _unary(env, m.RegisterModel),
        "GetModel": _unary(env, m.GetModel),
        "ListModels": _unary(env, m.ListModels),
        "UnregisterModel": _unary(env, m.UnregisterModel),
        "ListHookPoints": _unary(env, m.ListHookPoints),
        "ExtractDictionary": _server_stream(env, d.ExtractDictionary),
        "GetDictionary": _unary(env, d.GetDictionary),
        "ListDictionaries": _unary(env, d.ListDictionaries),
        "DeleteDictionary": _unary(env, d.DeleteDictionary),
        "ExportDictionary": _server_stream(env, d.ExportDictionary),
        "Detect": _unary(env, det.Detect),
        "Perturb": _unary(env, per.Perturb),
        "Generate": _server_stream(env, per.Generate),
    }


UNARY_AND_SERVER_STREAMING = [
    "RegisterModel",
    "GetModel",
    "ListModels",
    "UnregisterModel",
    "ListHookPoints",
    "ExtractDictionary",
    "GetDictionary",
    "ListDictionaries",
    "DeleteDictionary",
    "ExportDictionary",
    "Detect",
    "Perturb",
    "Generate",
    "PutPolicy",
    "GetPolicy",
    "ListPolicies",
    "DeletePolicy",
    "Check",
]


def _protect(env: FuzzEnv, rpc: str, request: Message) -> Message:
    """Keep the fixture alive: never unregister its models or delete its dictionaries, and
    never register over their names (those are separate, explicit checks)."""
    if rpc in ("UnregisterModel", "RegisterModel") and request.name in env.protected_models:
        request.name = request.name + "-x"
    if rpc == "DeleteDictionary" and request.id in (env.pa_id, env.dsc_id):
        request.id = "dict-000000000000"
    if rpc == "PutPolicy" and request.policy.name == POLICY:
        request.policy.name = "fz-new-policy"
    if rpc == "DeletePolicy" and request.name == POLICY:
        request.name = "fz-unknown-policy"
    return request


@pytest.mark.parametrize("rpc", UNARY_AND_SERVER_STREAMING)
def test_rpc_survives_hostile_requests(env: FuzzEnv, rpc: str) -> None:
    bases = _bases(env)[rpc]
    caller = _callers(env)[rpc]

    @FUZZ
    @given(request=requests(bases, env))
    def run(request: Message) -> None:
        request = _protect(env, rpc, request)
        exercise(env, rpc, caller(request), request)

    run()


@st.composite
def stream_detect_messages(draw: Callable[[Any], Any], env: FuzzEnv) -> list[Message]:
    pools = _pools(env)
    bases = _bases(env)["StreamDetect"]
    messages = []
    for _ in range(draw(st.integers(0, 6))):
        msg = dp.StreamDetectRequest()
        choice = draw(st.integers(0, 3))
        if choice == 3:
            msg = _random_message(draw, dp.StreamDetectRequest.DESCRIPTOR, pools)
        else:
            msg.CopyFrom(bases[choice])
            if draw(st.booleans()):
                _mutate(draw, msg, pools)
        messages.append(msg)
    return messages


def test_stream_detect_survives_hostile_streams(env: FuzzEnv) -> None:
    stub = dpg.DetectionServiceStub(env.channel)

    @FUZZ
    @given(messages=stream_detect_messages(env))
    def run(messages: list[Message]) -> None:
        def call() -> list[Any]:
            return list(
                stub.StreamDetect(iter(messages), timeout=STREAM_TIMEOUT, metadata=env.metadata)
            )

        exercise(env, "StreamDetect", call, messages)

    run()


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {i.name: tar.extractfile(i).read() for i in tar if i.isfile()}  # type: ignore[union-attr]


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


JSON_VALUES = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            0,
            -1,
            2**70,
            1.5,
            NAN,
            INF,
            "",
            "x" * 1000,
            [],
            {},
            [1, 2],
            {"a": 1},
            "dict-000000000000",
            "dict-../../x",
            "../../etc",
        ]
    ),
    st.text(max_size=20),
    st.integers(),
)


@st.composite
def archives(draw: Callable[[Any], Any], env: FuzzEnv) -> tuple[list[bytes], str]:
    """(pieces of an archive, sha256 to send): broken, tampered or hostile variants."""
    good = env.archive
    members = _members(good)
    manifest = json.loads(members["manifest.json"])
    kind = draw(
        st.sampled_from(
            [
                "empty",
                "random",
                "truncated",
                "flipped",
                "traversal",
                "symlink",
                "extra",
                "missing",
                "manifest",
                "manifest_key",
                "new_id",
                "tensors",
                "duplicate",
                "wrong_sha",
                "as_is",
                "huge_header",
                "gzip",
                "not_utf8",
            ]
        )
    )
    if kind == "empty":
        data = b""
    elif kind == "random":
        data = draw(st.binary(max_size=4000))
    elif kind == "truncated":
        data = good[: draw(st.integers(0, len(good) - 1))]
    elif kind == "flipped":
        i = draw(st.integers(0, len(good) - 1))
        data = good[:i] + bytes([good[i] ^ 0xFF]) + good[i + 1 :]
    elif kind in ("traversal", "symlink", "extra"):
        entries = [_file(n, d) for n, d in members.items()]
        if kind == "traversal":
            entries.append(
                _file(
                    draw(
                        st.sampled_from(
                            [
                                "../../evil",
                                "/tmp/evil",
                                "dictionaries/../../x",
                                "manifest.json/../x",
                            ]
                        )
                    ),
                    b"x",
                )
            )
        elif kind == "symlink":
            link = tarfile.TarInfo(draw(st.sampled_from(["manifest.json", "chunks.safetensors"])))
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            entries = [e for e in entries if e[0].name != link.name] + [(link, None)]
        else:
            entries.append(_file("extra.bin", b"x" * 10))
        data = _tar(entries)
    elif kind == "missing":
        keep = draw(st.sampled_from(list(members)))
        data = _tar([_file(keep, members[keep])])
    elif kind in ("manifest", "manifest_key", "new_id"):
        changed = json.loads(json.dumps(manifest))
        if kind == "manifest":
            key = draw(st.sampled_from(sorted(changed)))
            changed[key] = draw(JSON_VALUES)
        elif kind == "manifest_key":
            sub = draw(st.sampled_from(["model", "corpus", "stats", "parameters", "entries"]))
            if isinstance(changed[sub], list):
                changed[sub] = [*changed[sub][: draw(st.integers(0, 1))], draw(JSON_VALUES)]
            else:
                changed[sub][draw(st.sampled_from([*changed[sub], "extra"]))] = draw(JSON_VALUES)
        else:  # a valid archive under a new id: accepted, then undone
            changed["id"] = "dict-" + draw(st.from_regex(r"\A[0-9a-f]{12}\Z"))
        body = json.dumps(changed, allow_nan=True).encode()
        data = _tar(
            [
                _file("manifest.json", body),
                _file("chunks.safetensors", members["chunks.safetensors"]),
            ]
        )
    elif kind == "tensors":
        blob = members["chunks.safetensors"]
        header = draw(st.sampled_from([b"\xff" * 8, (10**12).to_bytes(8, "little"), b"\x00" * 8]))
        data = _tar(
            [
                _file("manifest.json", members["manifest.json"]),
                _file("chunks.safetensors", header + blob[len(header) :]),
            ]
        )
    elif kind == "duplicate":
        data = _tar([_file(n, d) for n, d in members.items()] * 2)
    elif kind == "huge_header":
        info, body = _file("manifest.json", members["manifest.json"])
        raw = bytearray(
            _tar([(info, body), _file("chunks.safetensors", members["chunks.safetensors"])])
        )
        raw[124:136] = b"77777777777\x00"  # size field: 8 GiB
        data = bytes(raw)
    elif kind == "gzip":
        import gzip

        data = gzip.compress(good)
    elif kind == "not_utf8":
        data = _tar(
            [
                _file("manifest.json", b"\xff\xfe{"),
                _file("chunks.safetensors", members["chunks.safetensors"]),
            ]
        )
    else:
        data = good  # already stored: ALREADY_EXISTS
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    sha = (
        draw(st.sampled_from([digest, "", "sha256:" + "0" * 64, "garbage"]))
        if kind != "new_id"
        else digest
    )
    if kind == "wrong_sha":
        data, sha = good, "sha256:" + "1" * 64
    size = draw(st.sampled_from([1 << 20, 1, 7, 512]))
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    if draw(st.integers(0, 5)) == 0:
        pieces = [*pieces, b"", b""]
    return pieces, sha


def test_import_survives_hostile_archives(env: FuzzEnv) -> None:
    stub = pbg.DictionaryServiceStub(env.channel)

    @FUZZ
    @given(archive=archives(env))
    def run(archive: tuple[list[bytes], str]) -> None:
        pieces, sha = archive
        messages = [
            pb.ImportDictionaryRequest(data=p, sha256=sha if i == 0 else "")
            for i, p in enumerate(pieces)
        ]

        def call() -> Any:
            return stub.ImportDictionary(
                iter(messages), timeout=UNARY_TIMEOUT, metadata=env.metadata
            )

        exercise(env, "ImportDictionary", call, f"{len(pieces)} pieces, sha {sha[:20]}")

    run()


@pytest.mark.parametrize("token", OUT_OF_RANGE_TOKENS)
def test_out_of_range_page_token(env: FuzzEnv, token: str) -> None:
    request = pb.ListDictionariesRequest(page=common_pb2.PageRequest(page_token=token))
    stub = pbg.DictionaryServiceStub(env.channel)
    code = exercise(env, "ListDictionaries", _unary(env, stub.ListDictionaries)(request), request)
    assert code == "INVALID_ARGUMENT"


# Paths that make Path.expanduser / exists raise (RuntimeError, OSError ENAMETOOLONG): were
# INTERNAL (fixed in b6c883e); in the pools too.


@pytest.mark.parametrize("path", BAD_PATHS, ids=["long-name", "long-path", "unknown-user"])
@pytest.mark.parametrize("rpc", ["RegisterModel", "ExtractDictionary"])
def test_hostile_paths(env: FuzzEnv, rpc: str, path: str) -> None:
    if rpc == "RegisterModel":
        request: Message = mp.RegisterModelRequest(name="fz-path", source_path=path, wait=True)
    else:
        request = _bases(env)["ExtractDictionary"][0]
        request.corpus.path = path
    code = exercise(env, rpc, _callers(env)[rpc](request), request)
    assert code in ("INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED")


# Regression: a subnormal temperature once overflowed logits/temperature -> NaN -> INTERNAL;
# it now decodes greedily (its limit).
@pytest.mark.parametrize("temperature", TINY_TEMPERATURES)
def test_tiny_temperature(env: FuzzEnv, temperature: float) -> None:
    request = pp.GenerateRequest(
        model=_ref(),
        prompt=dp.DetectInput(text="The cat"),
        sampling=pp.SamplingParams(max_new_tokens=2, temperature=temperature),
    )
    code = exercise(env, "Generate", _callers(env)["Generate"](request), request)
    assert code in ("OK", "INVALID_ARGUMENT")


# Regression: DSC on a corpus of one step (after max_tokens) was INTERNAL from decode_accuracy.
def test_dsc_one_step_corpus(env: FuzzEnv) -> None:
    request = _bases(env)["ExtractDictionary"][1]
    request.max_tokens = 1
    code = exercise(env, "ExtractDictionary", _callers(env)["ExtractDictionary"](request), request)
    assert code == "INVALID_ARGUMENT"


def test_fixture_names_cannot_be_taken_over(env: FuzzEnv) -> None:
    """Registering over a fixture model, or re-importing its dictionary, changes nothing."""
    stub = mpg.ModelServiceStub(env.channel)
    for name, source in (("fz-lm", "tiny-gpt2"), ("fz-rnn", "rnn-gru"), ("fz-gpt2", "bert")):
        request = mp.RegisterModelRequest(name=name, source_path=source, wait=True)
        code = exercise(env, "RegisterModel", _unary(env, stub.RegisterModel)(request), request)
        assert code != "OK", (name, source, code)


# ----- AnalysisService (when the server has it) ---------------------------------------------------


def _analysis_bases(env: FuzzEnv) -> dict[str, list[Message]]:
    assert ap is not None
    rng = np.random.default_rng(0)
    states = rng.standard_normal((20, 8)).astype(np.float32)
    tensor = common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=[20, 8], data=states.tobytes())
    captured = ap.CapturedStates(
        model=_ref(), hook_point=LM_HOOK, inputs=pb.Corpus(texts=pb.TextList(texts=TRAIN[:3]))
    )
    weight = common_pb2.Tensor(
        dtype=common_pb2.DTYPE_FLOAT32,
        shape=[4, 3],
        data=rng.standard_normal((4, 3)).astype(np.float32).tobytes(),
    )
    weight2 = common_pb2.Tensor(
        dtype=common_pb2.DTYPE_FLOAT32,
        shape=[2, 4],
        data=rng.standard_normal((2, 4)).astype(np.float32).tobytes(),
    )
    network = ap.NetworkSource(
        network=ap.DenseNetwork(
            layers=[ap.DenseLayer(weight=weight), ap.DenseLayer(weight=weight2)]
        )
    )
    return {
        "CompareRepresentations": [
            ap.CompareRepresentationsRequest(
                a=ap.StateSet(tensor=tensor),
                b=ap.StateSet(tensor=tensor),
                measures=[ap.MEASURE_LINEAR_CKA, ap.MEASURE_PROCRUSTES],
            ),
            ap.CompareRepresentationsRequest(
                a=ap.StateSet(captured=captured),
                b=ap.StateSet(tensor=tensor),
                measures=[ap.MEASURE_GROMOV_WASSERSTEIN],
            ),
        ],
        "LayerSimilarity": [
            ap.LayerSimilarityRequest(
                layers=ap.NamedStatesList(
                    layers=[
                        ap.NamedStates(name="a", states=tensor),
                        ap.NamedStates(name="b", states=tensor),
                    ]
                ),
                measure=ap.MEASURE_LINEAR_CKA,
            ),
            ap.LayerSimilarityRequest(
                model=ap.ModelLayers(
                    model=_ref(), inputs=pb.Corpus(texts=pb.TextList(texts=TRAIN[:2]))
                ),
                measure=ap.MEASURE_LINEAR_CKA,
            ),
        ],
        "ConnectionCost": [
            ap.ConnectionCostRequest(network=network),
            ap.ConnectionCostRequest(network=ap.NetworkSource(model=_ref("fz-rnn"))),
        ],
        "OptimizeNeuronLayout": [ap.OptimizeNeuronLayoutRequest(network=network, max_rounds=2)],
    }


ANALYSIS_RPCS = [
    "CompareRepresentations",
    "LayerSimilarity",
    "ConnectionCost",
    "OptimizeNeuronLayout",
]


@pytest.fixture(scope="module")
def analysis(env: FuzzEnv) -> Any:
    if apg is None:
        pytest.skip("no AnalysisService stubs")
    stub = apg.AnalysisServiceStub(env.channel)
    try:
        stub.ConnectionCost(
            ap.ConnectionCostRequest(), timeout=UNARY_TIMEOUT, metadata=env.metadata
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("the server does not serve AnalysisService yet")
    return stub


@pytest.mark.parametrize("rpc", ANALYSIS_RPCS)
def test_analysis_rpc_survives_hostile_requests(env: FuzzEnv, analysis: Any, rpc: str) -> None:
    bases = _analysis_bases(env)[rpc]
    method = getattr(analysis, rpc)
    streaming = rpc in ("CompareRepresentations", "LayerSimilarity")
    caller = (_server_stream if streaming else _unary)(env, method)

    @FUZZ
    @given(request=requests(bases, env))
    def run(request: Message) -> None:
        exercise(env, rpc, caller(request), request)

    run()


# ----- authentication and roles (when the server has keys) ------------------------------------

ADMIN_ONLY = {"RegisterModel", "UnregisterModel", "DeleteDictionary", "ImportDictionary"}
ANALYST = {"ExtractDictionary", "Perturb", "Generate"}


def _all_calls(env: FuzzEnv) -> dict[str, Callable[[tuple[tuple[str, str], ...]], Any]]:
    """Every RPC with a base request, taking the metadata to send."""
    bases, ch = _bases(env), env.channel
    m, d = mpg.ModelServiceStub(ch), pbg.DictionaryServiceStub(ch)
    det, per = dpg.DetectionServiceStub(ch), ppg.PerturbationServiceStub(ch)
    methods = {
        "RegisterModel": m.RegisterModel,
        "GetModel": m.GetModel,
        "ListModels": m.ListModels,
        "UnregisterModel": m.UnregisterModel,
        "ListHookPoints": m.ListHookPoints,
        "ExtractDictionary": d.ExtractDictionary,
        "GetDictionary": d.GetDictionary,
        "ListDictionaries": d.ListDictionaries,
        "DeleteDictionary": d.DeleteDictionary,
        "ExportDictionary": d.ExportDictionary,
        "Detect": det.Detect,
        "Perturb": per.Perturb,
        "Generate": per.Generate,
    }
    streaming = {"ExtractDictionary", "ExportDictionary", "Generate"}
    calls: dict[str, Callable[[Any], Any]] = {}
    for rpc, method in methods.items():
        request = bases[rpc][0]
        if rpc == "UnregisterModel":
            request = mp.UnregisterModelRequest(name="fz-lm")
        if rpc == "DeleteDictionary":
            request = pb.DeleteDictionaryRequest(id=env.pa_id)
        if streaming & {rpc}:
            calls[rpc] = lambda md, m=method, r=request: list(
                m(r, timeout=UNARY_TIMEOUT, metadata=md)
            )
        else:
            calls[rpc] = lambda md, m=method, r=request: m(r, timeout=UNARY_TIMEOUT, metadata=md)
    calls["StreamDetect"] = lambda md: list(
        det.StreamDetect(iter(bases["StreamDetect"]), timeout=UNARY_TIMEOUT, metadata=md)
    )
    calls["ImportDictionary"] = lambda md: d.ImportDictionary(
        iter([pb.ImportDictionaryRequest(data=env.archive)]), timeout=UNARY_TIMEOUT, metadata=md
    )
    return calls


@pytest.fixture(scope="module")
def keys(env: FuzzEnv, request: pytest.FixtureRequest) -> dict[str, str]:
    """role -> key the fuzzer's server trusts: the test session's keys, else made by the CLI."""
    try:
        return dict(request.getfixturevalue("api_keys"))
    except pytest.FixtureLookupError:
        pass
    if not keys_cli_available():
        pytest.skip("`chunkscope keys` does not exist yet: auth cannot be checked")
    return {role: create_key(env.server.data_dir, role) for role in ("monitor", "analyst")}


def test_missing_or_wrong_key_is_unauthenticated(env: FuzzEnv, keys: dict[str, str]) -> None:
    bad = [
        (),
        (("authorization", "Bearer cks_" + "0" * 40),),
        (("authorization", "cks_x"),),
        (("authorization", "Bearer "),),
        (("authorization", "Basic " + b64("admin:admin")),),
    ]
    for rpc, call in _all_calls(env).items():
        for md in bad:

            def attempt(call=call, md=md) -> Any:
                return call(md)

            code = exercise(env, rpc, attempt, f"{rpc} with metadata {md}")
            assert code == "UNAUTHENTICATED", (rpc, md, code)


def test_roles_below_admin_are_refused_admin_calls(env: FuzzEnv, keys: dict[str, str]) -> None:
    for role, forbidden in (("monitor", ADMIN_ONLY | ANALYST), ("analyst", ADMIN_ONLY)):
        md = (("authorization", f"Bearer {keys[role]}"),)
        for rpc, call in _all_calls(env).items():
            if rpc not in forbidden:
                continue
            code = exercise(env, rpc, lambda call=call, md=md: call(md), f"{rpc} as {role}")
            assert code == "PERMISSION_DENIED", (role, rpc, code)
