"""deploy/ against a live server: a real Prometheus (Debian's binary) loads deploy/'s rule files
and scrapes a real chunkscope that served Detect, Perturb, Generate and some failing calls; then
every PromQL expression of the rules and of the Grafana dashboard is run through Prometheus's
HTTP API (/api/v1/query). Each must parse, and each must return at least one series.

How each kind of expression is evaluated:
- recording rules: their own expression (the recorded series of earlier rules exist by then,
  since the test's Prometheus evaluates rules every second);
- alerts: the whole expression must parse (it may well return nothing: nothing is wrong);
  then each signal it watches is run alone: the expression is split at its top-level set
  operators (and, or, unless, with their on/ignoring) and each operand loses its top-level
  threshold comparison (`x > 0.05` -> `x`), so a typo in any metric, label or recorded name
  shows up as an empty signal;
- dashboard panels: each query with $job, $instance and $model as `.+`, $__rate_interval as
  1m and $__interval as 15s; template variables `label_values(SELECTOR, label)` run SELECTOR;
  the alert annotation query (ALERTS{...}) must only parse.

Metrics the server engineer is adding (chunkscope_model_state, per-concept detections, TTFT,
...): while the server under test does not export a metric at all (no HELP line on /metrics),
an empty result of an expression that needs it is reported as pending, not failed; once the
server exports it, its expressions are held to the same rule as every other.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ROOT, ServerProcess

PROMETHEUS = shutil.which("prometheus")
RULES = sorted((ROOT / "deploy/prometheus/rules").glob("*.rules.yml"))
DASHBOARD = ROOT / "deploy/grafana/dashboards/chunkscope.json"
TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$job": ".+",
    "$instance": ".+",
    "$model": ".+",
}
WAIT_SECONDS = 120


# ----- PromQL text handling -------------------------------------------------------------------


def _top_level(expr: str) -> Iterator[tuple[int, str]]:
    """(index, char) of the characters outside (), {}, [] and string literals."""
    depth, quote, i = 0, "", 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            yield i, ch
        i += 1


def _unwrap(expr: str) -> str:
    """`(x)` -> `x`, while the outer parentheses enclose the whole expression."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        inner = expr[1:-1]
        depth = 0
        for ch in inner:
            depth += ch == "("
            depth -= ch == ")"
            if depth < 0:
                return expr
        expr = inner.strip()
    return expr


_SET_OP = re.compile(r"\b(and|or|unless)\b", re.I)
_MATCHING = re.compile(r"\s*(?:on|ignoring)\s*\([^)]*\)", re.I)
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+0-9.eE]+\s*$")


def signals(expr: str) -> list[str]:
    """The operands of `expr`'s top-level set operators, each without its threshold."""
    expr = _unwrap(expr)
    top = "".join(ch if (i, ch) in set(_top_level(expr)) else " " for i, ch in enumerate(expr))
    pieces, start = [], 0
    for m in _SET_OP.finditer(top):
        pieces.append(expr[start : m.start()])
        matching = _MATCHING.match(expr, m.end())
        start = matching.end() if matching else m.end()
    pieces.append(expr[start:])
    result = []
    for piece in pieces:
        piece = _unwrap(piece)
        top_piece = "".join(
            ch if (i, ch) in set(_top_level(piece)) else " " for i, ch in enumerate(piece)
        )
        m = _COMPARISON.search(top_piece)
        result.append(_unwrap(piece[: m.start()]) if m else piece)
    return result


def test_signals_split_alerts_into_what_they_watch() -> None:
    assert signals('up{job="a"} == 0') == ['up{job="a"}']
    assert signals("x:ratio > 0.05\nand on (job, m)\nx:rate > 0.02") == ["x:ratio", "x:rate"]
    assert signals(
        'hooks > 0 unless on (job, instance) (sum by (job, instance) (q{a=~"x|y"}) > 0)'
    ) == ["hooks", 'sum by (job, instance) (q{a=~"x|y"})']
    assert signals("abs(d) / clamp_min(b, 0.01) > 0.5") == ["abs(d) / clamp_min(b, 0.01)"]


def _substitute(expr: str) -> str:
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    return expr


# ----- what to evaluate -----------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _dashboard_queries() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(queries that must return series, queries that must only parse), each (where, expr)."""
    dashboard = json.loads(DASHBOARD.read_text())
    must, parse = [], []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} {target['refId']}"
            must.append((where, _substitute(target["expr"])))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
            assert m, variable["query"]
            must.append((f"variable ${variable['name']}", _substitute(m.group(1))))
    for annotation in dashboard["annotations"]["list"]:
        parse.append((f"annotation {annotation['name']!r}", _substitute(annotation["expr"])))
    return must, parse


def _raw_metrics(
    expr: str, recorded: dict[str, str], seen: frozenset[str] = frozenset()
) -> set[str]:
    """The server metric families an expression needs, through recording rules."""
    names: set[str] = set()
    for token in set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', "", expr))):
        if token in recorded and token not in seen:
            names |= _raw_metrics(recorded[token], recorded, seen | {token})
        elif token.startswith(("chunkscope_", "grpc_server_")):
            names.add(re.sub(r"_(bucket|sum|count)$", "", token))
    return names


# ----- the live run ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.load(reply)
    except urllib.error.HTTPError as e:  # 400: the expression does not parse
        body = json.load(e)
    return body


def _query(port: int, expr: str) -> tuple[str, list[dict[str, Any]]]:
    """('' and the series) or (the error) for an instant query."""
    body = _api(port, "query", query=expr)
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    return "", list(body["data"]["result"])


def _traffic(c: Client, pa: str) -> None:
    """A short mixed load, failures included, so that the error and rejection series exist."""
    config = dp.DetectionConfig(model={"name": "deploy-lm"}, dictionary_ids=[pa])
    for text in TRAIN[:4]:
        c.detect(dp.DetectRequest(config=config, inputs=[dp.DetectInput(text=text)]))
    stream = iter(
        [
            dp.StreamDetectRequest(config=config),
            dp.StreamDetectRequest(input=dp.DetectInput(text=TRAIN[5])),
        ]
    )
    list(c.stream_detect(stream, timeout=60))
    intervention = pp.Intervention(
        chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
        mode=pp.INTERVENTION_MODE_ACTIVATE,
        positions=pp.Positions(indices=[-1]),
    )
    c.perturb(
        pp.PerturbRequest(
            model={"name": "deploy-lm"},
            input=dp.DetectInput(text=TRAIN[0]),
            interventions=[intervention],
        )
    )
    generate = pp.GenerateRequest(
        model={"name": "deploy-lm"},
        prompt=dp.DetectInput(text="On day 9 the"),
        interventions=[intervention],
        control=True,
        detect_dictionary_ids=[pa],
        sampling=pp.SamplingParams(max_new_tokens=4, seed=1),
    )
    list(c.generate(generate, timeout=60))
    failing = [
        lambda: c.get_model("deploy-missing"),  # NotFound
        lambda: c.detect(dp.DetectRequest(config=config)),  # InvalidArgument: no inputs
        lambda: c.detect(  # ResourceExhausted TOO_MANY_INPUTS: chunkscope_rejected_total
            dp.DetectRequest(config=config, inputs=[dp.DetectInput(text="x")] * 300)
        ),
    ]
    for call in failing:
        with pytest.raises(ChunkscopeError):
            call()


@pytest.fixture(scope="module")
def prometheus(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real Prometheus scraping `server` every second, with deploy/'s rules, evaluated every
    second; yields its port."""
    if PROMETHEUS is None:
        message = "Debian's prometheus is not installed (make test installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("prometheus")
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULES],
        "scrape_configs": [
            {
                "job_name": "chunkscope",
                "static_configs": [{"targets": [f"127.0.0.1:{server.metrics_port}"]}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = directory / "prometheus.log"
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _api(port, "status/buildinfo").get("status") == "success":
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                "Prometheus did not start in 60 s\n" + (log.read_text()[-3000:])
            )
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def _exported(server: ServerProcess) -> set[str]:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return set(re.findall(r"^# HELP (\S+)", text, re.M)) | {
        re.sub(r"_total$", "", n) + "_total" for n in re.findall(r"^# HELP (\S+)", text, re.M)
    }


def test_every_rule_and_dashboard_expression_returns_series(
    server: ServerProcess, prometheus: int
) -> None:
    port = prometheus
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("deploy-lm", "tiny-llama", wait=True)
        try:
            [pa] = c.extract_dictionary(
                pb.ExtractDictionaryRequest(
                    model={"name": "deploy-lm"},
                    hook_points=["blocks.1.resid_post"],
                    corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
                    population_averaging=pb.PopulationAveragingParams(
                        concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0
                    ),
                )
            )
            _run_checks(c, pa.id, server, port)
        finally:
            c.unregister_model("deploy-lm")


def _run_checks(c: Client, pa: str, server: ServerProcess, port: int) -> None:
    rules = _rules()
    recorded = {r["record"]: r["expr"] for r in rules if "record" in r}
    must: list[tuple[str, str]] = []
    parse: list[tuple[str, str]] = []
    for rule in rules:
        if "record" in rule:
            must.append((f"record {rule['record']}", rule["expr"]))
        else:
            parse.append((f"alert {rule['alert']}", rule["expr"]))
            for i, signal in enumerate(signals(rule["expr"])):
                must.append((f"alert {rule['alert']} signal {i}", signal))
    panels, annotations = _dashboard_queries()
    must += panels
    parse += annotations

    # Parse errors do not depend on data: report them before waiting for any.
    errors = [(where, expr, _query(port, expr)[0]) for where, expr in must + parse]
    broken = [f"{where}: {error}\n    {expr}" for where, expr, error in errors if error]
    assert not broken, "expressions that Prometheus refuses:\n" + "\n".join(broken)

    # Traffic while Prometheus scrapes, then wait (bounded) for every expression to have series
    # and every rule to have been evaluated healthy.
    deadline = time.monotonic() + WAIT_SECONDS
    empty: list[tuple[str, str]] = list(must)
    unhealthy: list[str] = []
    while True:
        _traffic(c, pa)
        time.sleep(2)
        empty = [(where, expr) for where, expr in empty if not _query(port, expr)[1]]
        groups = _api(port, "rules")["data"]["groups"]
        loaded = {r["name"] for g in groups for r in g["rules"]}
        unhealthy = [
            f"{r['name']}: {r['health']} {r.get('lastError', '')}"
            for g in groups
            for r in g["rules"]
            if r["health"] != "ok"
        ]
        exported = _exported(server)
        waiting = [e for e in empty if _raw_metrics(e[1], recorded) <= exported]
        if (not waiting and not unhealthy) or time.monotonic() > deadline:
            break

    expected = {r.get("record") or r["alert"] for r in rules}
    assert loaded == expected, f"rules loaded by Prometheus differ: {loaded ^ expected}"
    assert not unhealthy, "rules Prometheus did not evaluate cleanly:\n" + "\n".join(unhealthy)

    pending, failed = [], []
    for where, expr in empty:
        missing = sorted(_raw_metrics(expr, recorded) - exported)
        (pending if missing else failed).append(f"{where} (needs {missing})\n    {expr}")
    assert not failed, (
        f"expressions with no series after {WAIT_SECONDS} s of traffic and scrapes:\n"
        + "\n".join(failed)
    )
    if pending:
        warnings.warn(
            "PENDING SERVER METRICS: the server under test does not export these metrics yet, "
            "so these expressions could not be checked for series (they parse):\n"
            + "\n".join(pending),
            stacklevel=1,
        )

    # The alerts' whole expressions evaluate (empty is fine: nothing is wrong here).
    assert _api(port, "rules", type="alert")["status"] == "success"
