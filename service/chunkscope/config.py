"""Server configuration: one dataclass, filled from defaults < CHUNKSCOPE_* environment < flags.

Every setting has a flag `--some-name` and an environment variable `CHUNKSCOPE_SOME_NAME`.
README.md lists them; `chunkscope serve --help` prints them with their defaults.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "CHUNKSCOPE_"
_POLICY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # as api/guard.NAME


def _paths(value: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p)


@dataclass(frozen=True)
class Settings:
    """Everything `chunkscope serve` can be told. Field help is shown by --help."""

    host: str = field(
        default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0 in containers)"}
    )
    port: int = field(default=50051, metadata={"help": "gRPC port; 0 picks a free one"})
    metrics_port: int = field(
        default=9464, metadata={"help": "Prometheus /metrics port; 0 picks a free one, -1 disables"}
    )
    http_port: int = field(
        default=0,
        metadata={
            "help": "OpenAI-compatible HTTP front (/v1/chat/completions, /v1/models) on this "
            "port, with the same keys, roles, TLS and limits as gRPC; 0 = off"
        },
    )
    data_dir: Path = field(
        default=Path("./data"), metadata={"help": "registry database and dictionaries live here"}
    )
    store: str = field(
        default="",
        metadata={
            "help": "where registrations and dictionaries live: empty = SQLite and files in "
            "--data-dir (one server); postgresql://HOST/DB = a database shared by replicas "
            "(give the password in PGPASSWORD or ~/.pgpass, not in the URL)"
        },
    )
    store_sync_seconds: float = field(
        default=30.0,
        metadata={
            "help": "with a shared --store: how often to re-read the registrations even when "
            "no change notification came (changes normally arrive within milliseconds)"
        },
    )
    model_roots: tuple[Path, ...] = field(
        default=(),
        metadata={
            "help": f"'{os.pathsep}'-separated directories models may be loaded from "
            "(default: <data-dir>/models)"
        },
    )
    corpus_roots: tuple[Path, ...] = field(
        default=(),
        metadata={
            "help": f"'{os.pathsep}'-separated directories corpus files may be read from "
            "(default: <data-dir>/corpora)"
        },
    )
    device: str = field(
        default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu, cuda, cuda:N"}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "compute dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, "
            "float16, bfloat16"
        },
    )
    max_message_bytes: int = field(
        default=64 * 1024 * 1024, metadata={"help": "largest gRPC message received or sent"}
    )
    max_concurrent_rpcs: int = field(
        default=256, metadata={"help": "RPCs served at once before RESOURCE_EXHAUSTED"}
    )
    max_models: int = field(default=8, metadata={"help": "registered models at most"})
    max_input_tokens: int = field(
        default=8192,
        metadata={
            "help": "tokens one input may have (Detect input; Perturb/Generate prompt plus "
            "new tokens); RESOURCE_EXHAUSTED beyond. Input texts may also have 32 bytes per "
            "token at most, checked before tokenizing"
        },
    )
    max_capture_bytes: int = field(
        default=4 * 1024**3,
        metadata={"help": "hidden states one extraction may hold in memory (all its hook points)"},
    )
    max_analysis_samples: int = field(
        default=2000,
        metadata={
            "help": "samples one Gromov-Wasserstein comparison may use "
            "(params.gromov_wasserstein.max_samples)"
        },
    )
    max_analysis_steps: int = field(
        default=200_000,
        metadata={"help": "time steps one DSA comparison may use (params.dsa.max_samples)"},
    )
    max_analysis_layers: int = field(
        default=64, metadata={"help": "hook points one LayerSimilarity call may compare"}
    )
    max_inputs_per_request: int = field(
        default=256, metadata={"help": "inputs one Detect request may carry"}
    )
    max_new_tokens: int = field(
        default=1024, metadata={"help": "tokens one Generate arm may produce"}
    )
    max_extraction_jobs: int = field(
        default=2, metadata={"help": "ExtractDictionary jobs running at once"}
    )
    max_import_bytes: int = field(
        default=1 << 30,
        metadata={
            "help": "largest dictionary archive ImportDictionary accepts (spooled to the data "
            "dir as it arrives); RESOURCE_EXHAUSTED beyond"
        },
    )
    max_concurrent_imports: int = field(
        default=2, metadata={"help": "ImportDictionary calls running at once"}
    )
    max_queue_depth: int = field(
        default=64,
        metadata={
            "help": "work items (requests) queued or running on a device's scheduler before "
            "new ones are refused (admission control)"
        },
    )
    device_map: str = field(
        default="",
        metadata={
            "help": "language models' placement: empty puts each model whole on --device; "
            "auto, balanced or sequential let accelerate split it over the visible GPUs "
            "(then CPU, then <data-dir>/offload), one scheduler per set of devices"
        },
    )
    max_batch_tokens: int = field(
        default=2048,
        metadata={
            "help": "padded tokens (rows x longest row) one coalesced forward may hold; rows of "
            "concurrent forward-only requests share a forward up to this"
        },
    )
    max_batch_delay_ms: float = field(
        default=2.0,
        metadata={
            "help": "how long a forward-only request alone on an idle device waits for others "
            "to share its forward (0: never wait)"
        },
    )
    max_concurrent_streams: int = field(
        default=64, metadata={"help": "streaming RPCs open at once"}
    )
    auth: str = field(
        default="required",
        metadata={
            "help": "required: every RPC but the open services needs an API key; "
            "disabled: no checks (logged loudly; for local experiments only)"
        },
    )
    api_keys_file: str = field(
        default="", metadata={"help": "API key file (default: <data-dir>/keys.json)"}
    )
    open_services: str = field(
        default="grpc.health.v1.Health,grpc.reflection.v1alpha.ServerReflection",
        metadata={"help": "comma-separated services callable without a key"},
    )
    audit_log: str = field(
        default="", metadata={"help": "audit log file (default: <data-dir>/audit.jsonl)"}
    )
    tls_cert: str = field(
        default="", metadata={"help": "PEM server certificate chain; with --tls-key enables TLS"}
    )
    tls_key: str = field(default="", metadata={"help": "PEM private key of --tls-cert"})
    tls_client_ca: str = field(
        default="",
        metadata={"help": "PEM CA bundle: clients must present a certificate it signed (mTLS)"},
    )
    grace_seconds: float = field(
        default=20.0, metadata={"help": "on SIGTERM/SIGINT, how long in-flight RPCs may finish"}
    )
    restore_wait_seconds: float = field(
        default=300.0,
        metadata={
            "help": "at start-up, how long to wait for registered models to load before "
            "SERVING; slower ones go on loading in the background (state LOADING)"
        },
    )
    ext_proc_policy: str = field(
        default="",
        metadata={
            "help": "the guard policy the Envoy external processor "
            "(envoy.service.ext_proc.v3.ExternalProcessor) checks bodies against; empty: off "
            "unless a route names one (x-chunkscope-policy gRPC metadata)"
        },
    )
    ext_proc_mode: str = field(
        default="block",
        metadata={
            "help": "block: a BLOCK verdict ends the HTTP exchange with a 403; observe: never "
            "block, only record the verdict (metrics, log)"
        },
    )
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    log_format: str = field(
        default="text",
        metadata={"help": "text, or json (one object per line); both carry the request id"},
    )
    max_concept_series: int = field(
        default=1000,
        metadata={
            "help": "(model, dictionary, concept) label sets the per-concept detection metrics "
            'may hold; detections beyond are counted under dictionary and concept "other"'
        },
    )
    detection_rate_window_seconds: float = field(
        default=300.0,
        metadata={"help": "sliding window of the chunkscope_concept_detection_rate gauge"},
    )

    @property
    def keys_path(self) -> Path:
        return Path(self.api_keys_file) if self.api_keys_file else self.data_dir / "keys.json"

    @property
    def audit_path(self) -> Path:
        return Path(self.audit_log) if self.audit_log else self.data_dir / "audit.jsonl"

    @property
    def open_service_names(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.open_services.split(",") if s.strip())

    @property
    def corpora(self) -> tuple[Path, ...]:
        """Corpus roots, resolved; defaults to <data-dir>/corpora."""
        roots = self.corpus_roots or (self.data_dir / "corpora",)
        return tuple(r.resolve() for r in roots)

    @property
    def roots(self) -> tuple[Path, ...]:
        """Model roots, resolved; defaults to <data-dir>/models."""
        roots = self.model_roots or (self.data_dir / "models",)
        return tuple(r.resolve() for r in roots)


# Field types are strings here (postponed annotations); each names its parser.
_PARSERS: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "Path": lambda raw: Path(raw).expanduser(),
    "tuple[Path, ...]": _paths,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per Settings field; defaults are None so the environment can fill the gap."""
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        default = f.default
        shown = os.pathsep.join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(
            flag,
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} [env {env}; default {shown!s}]",
        )


def load_settings(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings: flag if given, else CHUNKSCOPE_* variable, else the default.

    Raises ValueError naming the flag/variable when a value does not parse.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name, None) if args is not None else None
        source = "--" + f.name.replace("_", "-")
        if raw is None:
            raw = environ.get(ENV_PREFIX + f.name.upper())
            source = ENV_PREFIX + f.name.upper()
        if raw is None:
            continue
        try:
            values[f.name] = _PARSERS[str(f.type)](str(raw))
        except ValueError as exc:
            raise ValueError(f"{source}={raw!r} is not a valid {f.type}: {exc}") from None
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    problems = []
    for name in ("port", "metrics_port", "http_port"):
        port = getattr(s, name)
        low = -1 if name == "metrics_port" else 0
        if not low <= port <= 65535:
            problems.append(f"{name}={port} must be in {low}..65535")
    if s.device != "auto" and s.device != "cpu" and not s.device.startswith("cuda"):
        problems.append(f"device={s.device!r} must be auto, cpu, cuda or cuda:N")
    if s.dtype not in ("auto", "float32", "float16", "bfloat16"):
        problems.append(f"dtype={s.dtype!r} must be auto, float32, float16 or bfloat16")
    for name in (
        "max_message_bytes",
        "max_concurrent_rpcs",
        "max_models",
        "max_capture_bytes",
        "max_input_tokens",
        "max_inputs_per_request",
        "max_analysis_samples",
        "max_analysis_steps",
        "max_analysis_layers",
        "max_new_tokens",
        "max_extraction_jobs",
        "max_import_bytes",
        "max_concurrent_imports",
        "max_queue_depth",
        "max_batch_tokens",
        "max_concurrent_streams",
        "max_concept_series",
    ):
        if getattr(s, name) <= 0:
            problems.append(f"{name} must be positive")
    if s.auth not in ("required", "disabled"):
        problems.append(f"auth={s.auth!r} must be required or disabled")
    if bool(s.tls_cert) != bool(s.tls_key):
        problems.append("tls_cert and tls_key go together: give both or neither")
    if s.tls_client_ca and not s.tls_cert:
        problems.append("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(s, name)
        if path and not Path(path).is_file():
            problems.append(f"{name}={path!r} is not a readable file")
    if s.device_map not in ("", "auto", "balanced", "sequential"):
        problems.append(f"device_map={s.device_map!r} must be empty, auto, balanced or sequential")
    if not 0 <= s.max_batch_delay_ms <= 1000:
        problems.append("max_batch_delay_ms must be in 0..1000")
    if s.store and not s.store.startswith(("postgresql://", "postgres://")):
        # Not echoed: a URL may carry a password.
        problems.append("store must be empty (SQLite in --data-dir) or a postgresql:// URL")
    if s.store_sync_seconds <= 0:
        problems.append("store_sync_seconds must be positive")
    if s.grace_seconds < 0:
        problems.append("grace_seconds must be >= 0")
    if s.restore_wait_seconds < 0:
        problems.append("restore_wait_seconds must be >= 0")
    if s.ext_proc_policy and not _POLICY_NAME.match(s.ext_proc_policy):
        problems.append(
            f"ext_proc_policy={s.ext_proc_policy[:80]!r} is not a policy name (1-64 characters: "
            "a-z, 0-9, '.', '_', '-', starting with a letter or digit)"
        )
    if s.ext_proc_mode not in ("block", "observe"):
        problems.append(f"ext_proc_mode={s.ext_proc_mode!r} must be block or observe")
    if s.log_format not in ("text", "json"):
        problems.append(f"log_format={s.log_format!r} must be text or json")
    if s.detection_rate_window_seconds < 10:
        problems.append("detection_rate_window_seconds must be >= 10")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"log_level={s.log_level!r} must be DEBUG, INFO, WARNING or ERROR")
    if problems:
        raise ValueError("invalid settings: " + "; ".join(problems))
