"""Packages that ship generated modules under the same names: xds-protos (Envoy's protos, for the
ext_proc service) carries older copies of opentelemetry-proto's and googleapis-common-protos'
modules. `make venv` and the Dockerfile reinstall those two after it; if that step is lost, the
server cannot start with tracing on, which this catches without starting one."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata


def test_opentelemetry_and_envoy_protos_import_together() -> None:
    from envoy.service.ext_proc.v3 import external_processor_pb2
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.common.v1 import common_pb2

    assert OTLPSpanExporter is not None and hasattr(common_pb2, "InstrumentationScope")
    assert external_processor_pb2.ProcessingRequest.DESCRIPTOR.full_name == (
        "envoy.service.ext_proc.v3.ProcessingRequest"
    )


def test_the_installed_proto_modules_are_their_own_packages() -> None:
    """Every opentelemetry-proto module on disk is the one its own package recorded."""
    dist = importlib.metadata.distribution("opentelemetry-proto")
    checked = 0
    for record in dist.files or ():
        if str(record).endswith("_pb2.py") and record.hash is not None:
            data = record.locate().read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == record.hash.value, f"{record} was overwritten by another package"
            checked += 1
    assert checked > 5
