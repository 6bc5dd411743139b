"""Replay of tests/vectors/*.json in Python: the same rules every client's suite implements.

A vector names a method by service and RPC, gives the request in the protos' canonical JSON form
(`requests` for a bidirectional stream) and the expected outcome: `response` (unary),
`responses` (streams) or `error` (code name, ErrorInfo reason, message, field violations).
`{{NAME}}` in a vector stands for the fixture's environment variable NAME. Fields named in
`ignore_fields` are dropped from replies at any depth before comparing; numbers compare with a
relative tolerance of 1e-5 and an absolute one of 1e-9, everything else exactly.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import (  # noqa: F401  (registers the services in the pool)
    detection_pb2,
    dictionaries_pb2,
    models_pb2,
    perturbation_pb2,
)

# Replies' fields that change from run to run (timings, clocks).
VOLATILE = {
    "registeredAt", "loadSeconds", "createdAt", "forwardNs", "elapsedSeconds",
    "estimatedSecondsLeft", "fit_seconds", "sourcePath",
}  # fmt: skip
REL_TOLERANCE, ABS_TOLERANCE = 1e-5, 1e-9
_PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")


def substitute(value: Any, env: dict[str, str]) -> Any:
    """`{{NAME}}` -> env[NAME] in every string of a JSON value."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: env[m.group(1)], value)
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    return value


def strip(value: Any, ignore: set[str]) -> Any:
    """Drop the keys in `ignore` at any depth."""
    if isinstance(value, list):
        return [strip(v, ignore) for v in value]
    if isinstance(value, dict):
        return {k: strip(v, ignore) for k, v in value.items() if k not in ignore}
    return value


def mismatch(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where `actual` differs from `expected`, or None when they match."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if expected is actual else f"{path}: expected {expected!r}, got {actual!r}"
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if math.isclose(expected, actual, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE):
            return None
        return f"{path}: expected {expected!r}, got {actual!r}"
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return f"{path}: keys differ: expected {sorted(expected)}, got {sorted(actual)}"
        for key in expected:
            if found := mismatch(expected[key], actual[key], f"{path}.{key}"):
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            if found := mismatch(e, a, f"{path}[{i}]"):
                return found
        return None
    return None if expected == actual else f"{path}: expected {expected!r}, got {actual!r}"


def load(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def call_vector(vector: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Make the vector's call through the generated stubs; the outcome in the vector's form."""
    pool = descriptor_pool.Default()
    method = pool.FindServiceByName(vector["service"]).FindMethodByName(vector["method"])
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)

    def parse(body: Any) -> Any:
        return json_format.ParseDict(substitute(body, env), request_cls())

    ignore = set(vector.get("ignore_fields", ()))

    def render(reply: Any) -> Any:
        return strip(json_format.MessageToDict(reply), ignore)

    path = f"/{vector['service']}/{vector['method']}"
    token = env.get("CHUNKSCOPE_TEST_TOKEN", "")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with Client.connect(env["CHUNKSCOPE_TEST_ADDRESS"], timeout=120, token=token) as client:
        channel: Any = client._channel
        kind = vector["kind"]
        try:
            try:
                if kind == "unary":
                    rpc = channel.unary_unary(
                        path, request_cls.SerializeToString, response_cls.FromString
                    )
                    return {"response": render(rpc(parse(vector["request"]), timeout=120,
                                                   metadata=metadata))}  # fmt: skip
                if kind == "server_stream":
                    rpc = channel.unary_stream(
                        path, request_cls.SerializeToString, response_cls.FromString
                    )
                    replies = rpc(parse(vector["request"]), timeout=120, metadata=metadata)
                    return {"responses": [render(r) for r in replies]}
                if kind == "bidi_stream":
                    rpc = channel.stream_stream(
                        path, request_cls.SerializeToString, response_cls.FromString
                    )
                    requests = iter([parse(r) for r in vector["requests"]])
                    return {"responses": [render(r) for r in rpc(requests, timeout=120,
                                                                 metadata=metadata)]}  # fmt: skip
            except grpc.RpcError as rpc_error:
                raise ChunkscopeError.from_rpc_error(rpc_error) from None
        except ChunkscopeError as error:
            outcome: dict[str, Any] = {"code": error.code.name, "message": error.message}
            if error.reason:
                outcome["reason"] = error.reason
            if error.field_violations:
                outcome["field_violations"] = [
                    {"field": f, "description": d} for f, d in error.field_violations
                ]
            return {"error": outcome}
    raise ValueError(f"unknown vector kind {kind!r}")


def check(vector: dict[str, Any], outcome: dict[str, Any], env: dict[str, str]) -> str | None:
    """Compare a replayed outcome with the vector's expectation; None when they agree."""
    for key in ("response", "responses", "error"):
        if key in vector:
            if key not in outcome:
                return f"expected {key}, got {json.dumps(outcome)[:400]}"
            return mismatch(substitute(vector[key], env), outcome[key], key)
    return "vector has no expected outcome"
