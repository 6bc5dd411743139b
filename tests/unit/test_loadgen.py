"""scripts/loadgen.py end to end, very short: 2 clients for 3 s against a tiny model.

Checks the report's structure and that nothing unexpected happened; no timing assertions (the
machine is shared). The 10-minute soak and its numbers are in RELIABILITY.md.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from support import ROOT


def _loadgen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("loadgen", ROOT / "scripts" / "loadgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadgen"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_percentiles_interpolate() -> None:
    loadgen = _loadgen()
    assert loadgen._percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert loadgen._percentile([5.0], 99) == 5.0
    assert loadgen.parse_mix("Detect=3,List") == {"Detect": 3, "List": 1}


def test_short_run_reports_every_method_and_no_unexpected_errors(tmp_path: Path) -> None:
    loadgen = _loadgen()
    out = tmp_path / "report.json"
    status = loadgen.main(
        ["--clients", "2", "--seconds", "3", "--warmup-seconds", "1", "--rss-interval", "0.5",
         "--json", str(out), "--work-dir", str(tmp_path / "work")]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert status == 0, report["errors"]
    assert report["errors"]["unexpected"] == {} and report["server_bugs"] == []
    assert set(report["methods"]) == {"Detect", "StreamDetect", "Generate", "List"}
    for method in report["methods"].values():
        assert {"calls", "ok", "per_second", "p50_ms", "p95_ms", "p99_ms", "codes"} <= set(method)
    assert report["total_ok"] > 0 and report["health_after"] == "SERVING"
    rss = report["rss_kib"]
    assert rss["before"] > 0 and rss["after"] > 0 and rss["samples"]
    assert report["server_exit_status"] == 0
