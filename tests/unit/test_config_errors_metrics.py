"""Settings precedence and validation, the error table, metric label spelling."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
import pytest

from chunkscope import metrics
from chunkscope.config import Settings, add_arguments, load_settings
from chunkscope.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Slots,
    status_code,
)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_beat_environment_beat_defaults() -> None:
    env = {
        "CHUNKSCOPE_PORT": "6000",
        "CHUNKSCOPE_METRICS_PORT": "6001",
        "CHUNKSCOPE_DTYPE": "bfloat16",
    }
    s = load_settings(_parse("--port", "7000"), env)
    assert (s.port, s.metrics_port, s.dtype) == (7000, 6001, "bfloat16")
    assert s.max_models == Settings().max_models


def test_model_roots_split_on_pathsep_and_default_under_data_dir(tmp_path: Path) -> None:
    s = load_settings(None, {"CHUNKSCOPE_MODEL_ROOTS": f"{tmp_path}/a:{tmp_path}/b"})
    assert s.roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    s = load_settings(None, {"CHUNKSCOPE_DATA_DIR": str(tmp_path)})
    assert s.roots == ((tmp_path / "models").resolve(),)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CHUNKSCOPE_PORT": "http"}, "CHUNKSCOPE_PORT"),
        ({"CHUNKSCOPE_PORT": "70000"}, "port"),
        ({"CHUNKSCOPE_DEVICE": "tpu"}, "device"),
        ({"CHUNKSCOPE_DTYPE": "int8"}, "dtype"),
        ({"CHUNKSCOPE_MAX_MODELS": "0"}, "max_models"),
    ],
)
def test_invalid_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        load_settings(None, env)


def test_each_domain_error_has_its_status() -> None:
    table = {
        InvalidArgument(FieldViolation("f", "bad")): grpc.StatusCode.INVALID_ARGUMENT,
        NotFound("x"): grpc.StatusCode.NOT_FOUND,
        AlreadyExists("x"): grpc.StatusCode.ALREADY_EXISTS,
        PermissionDenied("x"): grpc.StatusCode.PERMISSION_DENIED,
        FailedPrecondition("x"): grpc.StatusCode.FAILED_PRECONDITION,
        ResourceExhausted("x"): grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    for error, code in table.items():
        assert status_code(error) is code


def test_invalid_argument_message_lists_every_field() -> None:
    err = InvalidArgument(
        [FieldViolation("name", "required"), FieldViolation("source_path", "required")]
    )
    assert err.message == "name: required; source_path: required"


# Go's codes.Code String() names (google.golang.org/grpc/codes), which go-grpc-middleware writes
# into grpc_code: written out here, not derived, so a wrong derivation cannot pass.
GO_CODE_NAMES = {
    "OK": "OK", "CANCELLED": "Canceled", "UNKNOWN": "Unknown",
    "INVALID_ARGUMENT": "InvalidArgument", "DEADLINE_EXCEEDED": "DeadlineExceeded",
    "NOT_FOUND": "NotFound", "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied", "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition", "ABORTED": "Aborted",
    "OUT_OF_RANGE": "OutOfRange", "UNIMPLEMENTED": "Unimplemented", "INTERNAL": "Internal",
    "UNAVAILABLE": "Unavailable", "DATA_LOSS": "DataLoss", "UNAUTHENTICATED": "Unauthenticated",
}  # fmt: skip


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_code_labels_are_go_grpc_middleware_names(code: grpc.StatusCode) -> None:
    """Regression: CANCELLED was written Cancelled; dashboards built on Go servers say Canceled."""
    assert metrics.code_label(code) == GO_CODE_NAMES[code.name]


def test_handling_buckets_reach_minutes() -> None:
    assert max(metrics.HANDLING_BUCKETS) >= 600


def test_slots_refuse_one_past_the_limit_at_once_and_free_theirs_on_any_exit() -> None:
    jobs = Slots(1, "extraction jobs", "--max-extraction-jobs", "TOO_MANY_EXTRACTIONS")
    with jobs.take():
        with pytest.raises(ResourceExhausted) as err, jobs.take():
            pass
        assert err.value.reason == "TOO_MANY_EXTRACTIONS"
        assert err.value.message.startswith(
            "1 extraction jobs are running (--max-extraction-jobs 1)"
        )
    with pytest.raises(RuntimeError), jobs.take():
        raise RuntimeError("the job failed")
    assert jobs.used == 0
