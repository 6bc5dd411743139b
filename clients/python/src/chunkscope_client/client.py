"""The typed wrapper over the generated stubs: connection, deadlines, errors with details."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from chunkscope_client.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    common_pb2,
    detection_pb2,
    detection_pb2_grpc,
    dictionaries_pb2,
    dictionaries_pb2_grpc,
    guard_pb2,
    guard_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    perturbation_pb2,
    perturbation_pb2_grpc,
)

# The server's default limit; the gRPC default of 4 MiB is too small for large replies.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# The RPCs a client may send again when a replica answers UNAVAILABLE (it is down, restarting or
# draining): they only read server state or compute from their request, so running one twice
# changes nothing. The others change state (RegisterModel, UnregisterModel, ExtractDictionary,
# DeleteDictionary, ImportDictionary, PutPolicy, DeletePolicy): a call that failed mid-way may
# already have taken effect, and a retry could register, store or delete twice. StreamDetect is a
# bidirectional stream whose replies depend on what was sent before; it is not retried either.
# Server streams (Generate, ExportDictionary, the analysis streams) are retried only until their
# first reply arrives, as gRPC does for every stream.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "chunkscope.v1.ModelService": ("GetModel", "ListModels", "ListHookPoints"),
    "chunkscope.v1.DictionaryService": ("GetDictionary", "ListDictionaries", "ExportDictionary"),
    "chunkscope.v1.DetectionService": ("Detect",),
    "chunkscope.v1.PerturbationService": ("Perturb", "Generate"),
    "chunkscope.v1.AnalysisService": (
        "ConnectionCost",
        "CompareRepresentations",
        "LayerSimilarity",
        "OptimizeNeuronLayout",
    ),
    "chunkscope.v1.GuardService": ("GetPolicy", "ListPolicies", "Check"),
    "grpc.health.v1.Health": ("Check",),
}

# gRPC's retry policy for those RPCs: up to 4 attempts, waiting a random time up to 0.1 s, 0.2 s,
# 0.4 s (at most 1 s) between them; only UNAVAILABLE is retried.
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

# The channel's service config: round_robin over every address of the target, and the retry
# policy on the idempotent RPCs.
SERVICE_CONFIG: dict[str, Any] = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [
                {"service": service, "method": method}
                for service, methods in IDEMPOTENT_METHODS.items()
                for method in methods
            ],
            "retryPolicy": RETRY_POLICY,
        }
    ],
}

_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def channel_target(address: str | Sequence[str]) -> tuple[str, str | None]:
    """The gRPC target for `address`, and the authority to send when it lists several servers.

    One "host:port" or a gRPC target URI (e.g. "dns:///chunkscope.svc:50051", whose every A
    record is used) is returned as is. A list of "host:port" entries (a sequence, or one string
    with commas) becomes grpc-core's static "ipv4:" (or "ipv6:") target; hostnames in it are
    resolved here, once, to all of their addresses. The authority is the first entry, so TLS
    verifies every replica against that name unless `server_name` says otherwise.
    """
    if isinstance(address, str) and (address.startswith(_SCHEMES) or "://" in address):
        return address, None  # a target URI, for grpc-core's own resolvers
    entries = [address] if isinstance(address, str) else list(address)
    entries = [e.strip() for entry in entries for e in entry.split(",") if e.strip()]
    if not entries:
        raise ValueError("no address given")
    if len(entries) == 1:
        return entries[0], None
    if any(entry.startswith(_SCHEMES) or "://" in entry for entry in entries):
        raise ValueError(f"a list of addresses takes host:port entries only: {entries}")
    v4: list[str] = []
    v6: list[str] = []
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"{entry!r} is not host:port")
        host = host.strip("[]")
        try:
            ips = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except socket.gaierror as error:
                raise ValueError(f"cannot resolve {host!r}: {error}") from None
            ips = [ipaddress.ip_address(str(info[4][0])) for info in infos]
        found4 = [f"{ip}:{port}" for ip in dict.fromkeys(ips) if ip.version == 4]
        found6 = [f"[{ip}]:{port}" for ip in dict.fromkeys(ips) if ip.version == 6]
        v4.extend(found4 or [""])  # "" marks an entry without an address of that family
        v6.extend(found6 or [""])
    if "" not in v4:
        return "ipv4:" + ",".join(v4), entries[0]
    if "" not in v6:
        return "ipv6:" + ",".join(v6), entries[0]
    raise ValueError(f"mixing IPv4-only and IPv6-only servers in one list: {entries}")


_FORMATS = {
    "": models_pb2.MODEL_FORMAT_UNSPECIFIED,
    "hf_safetensors": models_pb2.MODEL_FORMAT_HF_SAFETENSORS,
    "gguf": models_pb2.MODEL_FORMAT_GGUF,
    "recurrent": models_pb2.MODEL_FORMAT_RECURRENT,
}


@dataclass
class ChunkscopeError(Exception):
    """A failed call: the gRPC status code plus the server's rich error details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ChunkscopeError:
        call: Any = error
        err = cls(code=call.code(), message=call.details() or "")
        status = rpc_status.from_call(call)
        if status is None:
            return err
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                err.reason, err.metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                err.field_violations = [(v.field, v.description) for v in bad.field_violations]
        return err


def _result_of(stream: Iterator[Any], on_progress: Callable[[Any], None] | None) -> Any:
    """The `result` of a progress-then-result stream, read to its end.

    Reading on after the result lets the call finish with the server's OK status; returning on
    the result instead drops the call, which the server records as cancelled.
    """
    result = None
    for message in stream:
        if message.HasField("progress"):
            if on_progress is not None:
                on_progress(message.progress)
        elif result is None:
            result = message.result
    if result is None:
        raise ChunkscopeError(grpc.StatusCode.UNKNOWN, "the stream ended without a result")
    return result


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call made on the channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"]
        return details._replace(metadata=[*metadata, self._header])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


class Client:
    """A connection to one chunkscope server. Every call has a deadline (`timeout` seconds).

    The stubs (`models`, `dictionaries`, `detection`, `perturbation`, `guard`, ...) are public for
    calls the wrapper does not cover; they carry the token too.
    """

    def __init__(self, channel: grpc.Channel, *, timeout: float = 30.0, token: str = "") -> None:
        self._raw_channel = channel
        if token:
            channel = grpc.intercept_channel(channel, _BearerToken(token))
        self._channel = channel
        self.timeout = timeout
        self.models = models_pb2_grpc.ModelServiceStub(channel)
        self.dictionaries = dictionaries_pb2_grpc.DictionaryServiceStub(channel)
        self.detection = detection_pb2_grpc.DetectionServiceStub(channel)
        self.perturbation = perturbation_pb2_grpc.PerturbationServiceStub(channel)
        self.analysis = analysis_pb2_grpc.AnalysisServiceStub(channel)
        self.guard = guard_pb2_grpc.GuardServiceStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)

    @classmethod
    def connect(
        cls,
        address: str | Sequence[str],
        *,
        timeout: float = 30.0,
        token: str | None = None,
        root_certificates: bytes | None = None,
        tls: bool = False,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        server_name: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> Client:
        """Open a channel to `address`: "host:port", several of them (a list, or one string with
        commas), or a gRPC target URI such as "dns:///chunkscope.svc:50051" (see channel_target).
        Calls are spread round_robin over every address; the idempotent RPCs are retried on
        UNAVAILABLE (IDEMPOTENT_METHODS, RETRY_POLICY).

        `token` is the API key (default: $CHUNKSCOPE_TOKEN). TLS is used when `tls` is set or
        any certificate is given: `root_certificates` (PEM) to trust a private CA,
        `private_key` + `certificate_chain` for mutual TLS, `server_name` to check the
        certificate against a name other than the address's host.
        """
        target, authority = channel_target(address)
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
            ("grpc.enable_retries", 1),
        ]
        if authority:
            options.append(("grpc.default_authority", authority))
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls or root_certificates or private_key or certificate_chain:
            creds = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=private_key,
                certificate_chain=certificate_chain,
            )
            channel = grpc.secure_channel(target, creds, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        if token is None:
            token = os.environ.get("CHUNKSCOPE_TOKEN", "")
        return cls(channel, timeout=timeout, token=token)

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise ChunkscopeError.from_rpc_error(error) from None

    def _stream(self, method: Any, request: Any, timeout: float) -> Iterator[Any]:
        """A streaming call whose errors surface as ChunkscopeError while iterating."""
        try:
            yield from method(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ChunkscopeError.from_rpc_error(error) from None

    # ----- health ---------------------------------------------------------------------------

    def health(self, service: str = "") -> str:
        """Serving status name ("SERVING", "NOT_SERVING", ...) of the server or one service."""
        reply = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    # ----- ModelService ---------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        source_path: str,
        *,
        format: str = "",
        dtype: str = "",
        wait: bool = False,
        timeout: float | None = None,
    ) -> models_pb2.Model:
        """Register a model from a path under a server model root; `wait` until it is READY."""
        if format not in _FORMATS:
            raise ValueError(f"format must be one of {sorted(_FORMATS)}")
        request = models_pb2.RegisterModelRequest(
            name=name, source_path=source_path, format=_FORMATS[format], dtype=dtype, wait=wait
        )
        timeout = timeout or (max(self.timeout, 300.0) if wait else None)
        return self._call(self.models.RegisterModel, request, timeout).model

    def get_model(self, name: str) -> models_pb2.Model:
        return self._call(self.models.GetModel, models_pb2.GetModelRequest(name=name)).model

    def list_models(self, page_size: int = 0) -> Iterator[models_pb2.Model]:
        """Every registered model, fetching pages as needed."""
        token = ""
        while True:
            page = common_pb2.PageRequest(page_size=page_size, page_token=token)
            reply = self._call(self.models.ListModels, models_pb2.ListModelsRequest(page=page))
            yield from reply.models
            token = reply.page.next_page_token
            if not token:
                return

    def unregister_model(self, name: str) -> models_pb2.Model:
        request = models_pb2.UnregisterModelRequest(name=name)
        return self._call(self.models.UnregisterModel, request).model

    def list_hook_points(
        self, model: str, *, content_hash: str = ""
    ) -> Sequence[common_pb2.HookPoint]:
        request = models_pb2.ListHookPointsRequest(
            model=common_pb2.ModelRef(name=model, content_hash=content_hash)
        )
        return list(self._call(self.models.ListHookPoints, request).hook_points)

    # ----- DictionaryService ----------------------------------------------------------------

    def extract_dictionary_stream(
        self, request: dictionaries_pb2.ExtractDictionaryRequest, *, timeout: float | None = None
    ) -> Iterator[dictionaries_pb2.ExtractDictionaryResponse]:
        """The raw ExtractDictionary stream: progress messages, then the result."""
        timeout = timeout or max(self.timeout, 3600.0)
        return self._stream(self.dictionaries.ExtractDictionary, request, timeout)

    def extract_dictionary(
        self,
        request: dictionaries_pb2.ExtractDictionaryRequest,
        *,
        timeout: float | None = None,
        on_progress: Callable[[dictionaries_pb2.ExtractionProgress], None] | None = None,
    ) -> list[dictionaries_pb2.Dictionary]:
        """Run an extraction to the end; returns the stored dictionaries (one per hook point)."""
        stream = self.extract_dictionary_stream(request, timeout=timeout)
        result: dictionaries_pb2.ExtractionResult = _result_of(stream, on_progress)
        return list(result.dictionaries)

    def get_dictionary(
        self, dictionary_id: str, *, include_prototypes: bool = False, include_tables: bool = False
    ) -> dictionaries_pb2.Dictionary:
        """A stored dictionary; `include_tables` adds a DSC dictionary's `dsc_tables` (centroids,
        state bins and counts, the decode split)."""
        request = dictionaries_pb2.GetDictionaryRequest(
            id=dictionary_id, include_prototypes=include_prototypes, include_tables=include_tables
        )
        return self._call(self.dictionaries.GetDictionary, request).dictionary

    def list_dictionaries(
        self, model: str = "", page_size: int = 0
    ) -> Iterator[dictionaries_pb2.Dictionary]:
        """Stored dictionaries (newest first), optionally of one model, fetching pages as needed."""
        token = ""
        while True:
            page = common_pb2.PageRequest(page_size=page_size, page_token=token)
            request = dictionaries_pb2.ListDictionariesRequest(model=model, page=page)
            reply = self._call(self.dictionaries.ListDictionaries, request)
            yield from reply.dictionaries
            token = reply.page.next_page_token
            if not token:
                return

    def delete_dictionary(self, dictionary_id: str) -> dictionaries_pb2.Dictionary:
        request = dictionaries_pb2.DeleteDictionaryRequest(id=dictionary_id)
        return self._call(self.dictionaries.DeleteDictionary, request).dictionary

    def export_dictionary(self, dictionary_id: str) -> bytes:
        """The dictionary as a portable archive (verified against the server's sha256)."""
        request = dictionaries_pb2.ExportDictionaryRequest(id=dictionary_id)
        parts, expected = [], ""
        for piece in self._stream(self.dictionaries.ExportDictionary, request, self.timeout):
            expected = expected or piece.sha256
            parts.append(piece.data)
        archive = b"".join(parts)
        if expected != "sha256:" + hashlib.sha256(archive).hexdigest():
            raise ChunkscopeError(grpc.StatusCode.DATA_LOSS, "exported archive failed its sha256")
        return archive

    def import_dictionary(self, archive: bytes) -> dictionaries_pb2.Dictionary:
        """Store an archive made by export_dictionary (the server validates it)."""
        digest = "sha256:" + hashlib.sha256(archive).hexdigest()

        def pieces() -> Iterator[dictionaries_pb2.ImportDictionaryRequest]:
            for start in range(0, max(len(archive), 1), 1 << 20):
                yield dictionaries_pb2.ImportDictionaryRequest(
                    data=archive[start : start + (1 << 20)], sha256=digest if start == 0 else ""
                )

        return self._call(self.dictionaries.ImportDictionary, pieces()).dictionary

    # ----- DetectionService and PerturbationService -------------------------------------

    def detect(self, request: detection_pb2.DetectRequest) -> detection_pb2.DetectResponse:
        """Chunks active per token for a batch of inputs."""
        return self._call(self.detection.Detect, request)

    def stream_detect(
        self,
        requests: Iterator[detection_pb2.StreamDetectRequest],
        *,
        timeout: float | None = None,
    ) -> Iterator[detection_pb2.StreamDetectResponse]:
        """A monitoring stream: the config first, then inputs; one reply per input, in order."""
        timeout = timeout or max(self.timeout, 3600.0)
        return self._stream(self.detection.StreamDetect, requests, timeout)

    def perturb(self, request: perturbation_pb2.PerturbRequest) -> perturbation_pb2.PerturbResponse:
        """One forward pass with interventions: next-token log-probabilities before and after."""
        return self._call(self.perturbation.Perturb, request)

    def generate(
        self, request: perturbation_pb2.GenerateRequest, *, timeout: float | None = None
    ) -> Iterator[perturbation_pb2.GenerateResponse]:
        """Streamed generation: one message per token and arm, then a `done` message per arm."""
        return self._stream(
            self.perturbation.Generate, request, timeout or max(self.timeout, 600.0)
        )

    # ----- AnalysisService ------------------------------------------------------------------

    def compare_representations_stream(
        self, request: analysis_pb2.CompareRepresentationsRequest, *, timeout: float | None = None
    ) -> Iterator[analysis_pb2.CompareRepresentationsResponse]:
        """The raw CompareRepresentations stream: progress messages, then the result."""
        timeout = timeout or max(self.timeout, 600.0)
        return self._stream(self.analysis.CompareRepresentations, request, timeout)

    def compare_representations(
        self,
        request: analysis_pb2.CompareRepresentationsRequest,
        *,
        timeout: float | None = None,
        on_progress: Callable[[analysis_pb2.AnalysisProgress], None] | None = None,
    ) -> analysis_pb2.CompareRepresentationsResult:
        """Compare two sets of states; one MeasureResult per requested measure."""
        stream = self.compare_representations_stream(request, timeout=timeout)
        result: analysis_pb2.CompareRepresentationsResult = _result_of(stream, on_progress)
        return result

    def layer_similarity_stream(
        self, request: analysis_pb2.LayerSimilarityRequest, *, timeout: float | None = None
    ) -> Iterator[analysis_pb2.LayerSimilarityResponse]:
        """The raw LayerSimilarity stream: progress messages, then the result."""
        timeout = timeout or max(self.timeout, 3600.0)
        return self._stream(self.analysis.LayerSimilarity, request, timeout)

    def layer_similarity(
        self,
        request: analysis_pb2.LayerSimilarityRequest,
        *,
        timeout: float | None = None,
        on_progress: Callable[[analysis_pb2.AnalysisProgress], None] | None = None,
    ) -> analysis_pb2.LayerSimilarityResult:
        """The layer-by-layer matrix of one measure, with groups of similar layers."""
        stream = self.layer_similarity_stream(request, timeout=timeout)
        result: analysis_pb2.LayerSimilarityResult = _result_of(stream, on_progress)
        return result

    def connection_cost(
        self, request: analysis_pb2.ConnectionCostRequest
    ) -> analysis_pb2.ConnectionCostResponse:
        """BIMT connection cost of a registered recurrent model or an inline network."""
        return self._call(self.analysis.ConnectionCost, request)

    def optimize_neuron_layout(
        self, request: analysis_pb2.OptimizeNeuronLayoutRequest, *, timeout: float | None = None
    ) -> analysis_pb2.OptimizeNeuronLayoutResponse:
        """Function-preserving neuron swaps that lower the connection cost."""
        return self._call(
            self.analysis.OptimizeNeuronLayout, request, timeout or max(self.timeout, 300.0)
        )

    # ----- GuardService ---------------------------------------------------------------------

    def put_policy(
        self, policy: guard_pb2.Policy, *, expected_version: int | None = None
    ) -> guard_pb2.Policy:
        """Store a new version of a policy (admins); `expected_version` refuses a lost update
        (0: the policy must not exist yet). Returns it as stored, with its version."""
        request = guard_pb2.PutPolicyRequest(policy=policy)
        if expected_version is not None:
            request.expected_version = expected_version
        return self._call(self.guard.PutPolicy, request).policy

    def get_policy(self, name: str, version: int = 0) -> guard_pb2.Policy:
        """A policy's latest version, or `version`."""
        request = guard_pb2.GetPolicyRequest(name=name, version=version)
        return self._call(self.guard.GetPolicy, request).policy

    def list_policies(self, name: str = "", page_size: int = 0) -> Iterator[guard_pb2.Policy]:
        """The latest version of every policy by name, or with `name` every version of it."""
        token = ""
        while True:
            page = common_pb2.PageRequest(page_size=page_size, page_token=token)
            request = guard_pb2.ListPoliciesRequest(page=page, name=name)
            reply = self._call(self.guard.ListPolicies, request)
            yield from reply.policies
            token = reply.page.next_page_token
            if not token:
                return

    def delete_policy(
        self, name: str, *, expected_version: int | None = None
    ) -> guard_pb2.DeletePolicyResponse:
        """Delete a policy (admins); its version numbers are not reused."""
        request = guard_pb2.DeletePolicyRequest(name=name)
        if expected_version is not None:
            request.expected_version = expected_version
        return self._call(self.guard.DeletePolicy, request)

    def put_preset(
        self, preset: guard_pb2.InterventionPreset, *, expected_version: int | None = None
    ) -> guard_pb2.InterventionPreset:
        """Store a new version of an intervention preset (admins); `expected_version` refuses a
        lost update (0: the preset must not exist yet). Returns it as stored, with its version.
        Generate and Perturb then name it in `presets` ("name" or "name@version")."""
        request = guard_pb2.PutPresetRequest(preset=preset)
        if expected_version is not None:
            request.expected_version = expected_version
        return self._call(self.guard.PutPreset, request).preset

    def get_preset(self, name: str, version: int = 0) -> guard_pb2.InterventionPreset:
        """A preset's latest version, or `version`."""
        request = guard_pb2.GetPresetRequest(name=name, version=version)
        return self._call(self.guard.GetPreset, request).preset

    def list_presets(
        self, name: str = "", page_size: int = 0
    ) -> Iterator[guard_pb2.InterventionPreset]:
        """The latest version of every preset by name, or with `name` every version of it."""
        token = ""
        while True:
            page = common_pb2.PageRequest(page_size=page_size, page_token=token)
            request = guard_pb2.ListPresetsRequest(page=page, name=name)
            reply = self._call(self.guard.ListPresets, request)
            yield from reply.presets
            token = reply.page.next_page_token
            if not token:
                return

    def delete_preset(
        self, name: str, *, expected_version: int | None = None
    ) -> guard_pb2.DeletePresetResponse:
        """Delete a preset (admins); its version numbers are not reused."""
        request = guard_pb2.DeletePresetRequest(name=name)
        if expected_version is not None:
            request.expected_version = expected_version
        return self._call(self.guard.DeletePreset, request)

    def check(
        self,
        policy: str,
        *,
        texts: Sequence[str] = (),
        messages: Sequence[tuple[str, str]] = (),
        input_type: str = "request",
        policy_version: int = 0,
        timeout: float | None = None,
    ) -> guard_pb2.CheckResponse:
        """Check texts, or chat messages as (role, content) pairs, against a policy.

        `input_type` is "request" or "response"; `timeout` is the call's deadline (default: the
        client's). A failure raises ChunkscopeError: it is never a verdict, and whether to let the
        traffic through then (fail open) or not (fail closed) is the caller's decision.
        """
        kinds = {"request": guard_pb2.INPUT_TYPE_REQUEST, "response": guard_pb2.INPUT_TYPE_RESPONSE}
        if input_type not in kinds:
            raise ValueError(f"input_type must be one of {sorted(kinds)}")
        request = guard_pb2.CheckRequest(
            policy=policy,
            policy_version=policy_version,
            input_type=kinds[input_type],
            texts=list(texts),
            messages=[guard_pb2.ChatMessage(role=r, content=c) for r, c in messages],
        )
        return self._call(self.guard.Check, request, timeout)
