"""Checks on deploy/ that no schema expresses (run by deploy/check.sh after the tools).

Usage: python deploy/check_static.py BUILD_DIR, where BUILD_DIR holds what check.sh rendered:
compose.yaml (resolved by composecheck) and k8s-<variant>.yaml (kustomize build output).
Needs PyYAML only. Exits 1 listing every problem found.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
problems: list[str] = []


def check(ok: object, message: str) -> None:
    if not ok:
        problems.append(message)


def settings_env_names() -> set[str]:
    """CHUNKSCOPE_* for every field of the server's Settings (one per `--flag`)."""
    source = (ROOT / "service/chunkscope/config.py").read_text()
    block = source.split("class Settings", 1)[1].split("\n    @property", 1)[0]
    return {
        "CHUNKSCOPE_" + n.upper() for n in re.findall(r"^    (\w+): [^=\n]+= field\(", block, re.M)
    }


def seconds(value: str) -> float:
    """A compose duration as composecheck prints it ("30s", "1m30s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", str(value)))


def check_dashboard() -> None:
    path = DEPLOY / "grafana/dashboards/chunkscope.json"
    dashboard = json.loads(path.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    check(
        variables.get("datasource", {}).get("type") == "datasource",
        "dashboard: no datasource variable",
    )
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    check(
        variables["datasource"]["current"]["value"] == uid,
        f"dashboard: datasource variable's default is not the provisioned uid {uid}",
    )
    ids = [p["id"] for p in dashboard["panels"]]
    check(len(ids) == len(set(ids)), "dashboard: duplicate panel ids")
    for p in dashboard["panels"]:
        if p["type"] == "row":
            continue
        where = f"dashboard panel {p['title']!r}"
        check(
            p.get("datasource") == {"type": "prometheus", "uid": "${datasource}"},
            f"{where}: datasource is not the ${{datasource}} variable",
        )
        check(p.get("targets"), f"{where}: no queries")
        for t in p.get("targets", []):
            check(
                t.get("datasource", {}).get("uid") == "${datasource}", f"{where}: query datasource"
            )
            check(t.get("expr", "").strip(), f"{where}: empty expression")
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/chunkscope.yaml").read_text()
    )
    check(
        provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/chunkscope",
        "dashboard provider path differs from where compose.yaml mounts the dashboards",
    )


def check_rules() -> None:
    docs = (ROOT / "docs/DEPLOY.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", docs, re.M)
    }
    tests = "".join(p.read_text() for p in (DEPLOY / "prometheus/tests").glob("*.test.yml"))
    for path in (DEPLOY / "prometheus/rules").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                name = rule["alert"]
                check(
                    rule.get("labels", {}).get("severity") in {"critical", "warning", "info"},
                    f"{name}: severity label missing or unknown",
                )
                runbook = rule.get("annotations", {}).get("runbook", "")
                check(runbook == f"docs/DEPLOY.md#{name.lower()}", f"{name}: runbook annotation")
                check(name.lower() in headings, f"{name}: no section '{name}' in docs/DEPLOY.md")
                check(f"alertname: {name}\n" in tests, f"{name}: no promtool unit test")


def check_compose(build: Path) -> None:
    project = yaml.safe_load((build / "compose.yaml").read_text())
    server = project["services"]["chunkscope"]
    grace = float(server["environment"]["CHUNKSCOPE_GRACE_SECONDS"])
    check(
        seconds(server["stop_grace_period"]) >= grace + 5,
        "compose: stop_grace_period leaves less than 5 s beyond CHUNKSCOPE_GRACE_SECONDS",
    )
    check(
        "chunkscope.healthcheck" in " ".join(server["healthcheck"]["test"]), "compose: healthcheck"
    )
    models = [v for v in server["volumes"] if v["target"] == "/models"]
    check(models and models[0].get("read_only"), "compose: /models is not read-only")
    known = settings_env_names()
    for key in server["environment"]:
        check(
            not key.startswith("CHUNKSCOPE_") or key in known,
            f"compose: {key} is no server setting",
        )


def pod_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(build: Path) -> None:
    known = settings_env_names()
    for path in sorted(build.glob("k8s-*.yaml")):
        variant = path.stem.removeprefix("k8s-")
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for d in docs:
            by_kind.setdefault(d["kind"], []).append(d)
        where = f"kubernetes {variant}"
        [cm] = by_kind["ConfigMap"]
        env = cm["data"]
        for key in env:
            check(key in known, f"{where}: ConfigMap key {key} is no server setting")
        check(
            "@" not in env["CHUNKSCOPE_STORE"] and "password" not in env["CHUNKSCOPE_STORE"],
            f"{where}: a password in CHUNKSCOPE_STORE",
        )
        [deploy] = by_kind["Deployment"]
        pod = deploy["spec"]["template"]
        labels = pod["metadata"]["labels"]
        spec = pod["spec"]
        [c] = spec["containers"]
        sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = float(env["CHUNKSCOPE_GRACE_SECONDS"])
        check(
            spec["terminationGracePeriodSeconds"] >= sleep + grace + 5,
            f"{where}: terminationGracePeriodSeconds < preStop sleep + --grace-seconds + 5",
        )
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check(str(ports["grpc"]) == env["CHUNKSCOPE_PORT"], f"{where}: grpc port")
        check(str(ports["metrics"]) == env["CHUNKSCOPE_METRICS_PORT"], f"{where}: metrics port")
        tls = "CHUNKSCOPE_TLS_CERT" in env
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c[probe]
            if tls:  # the kubelet's gRPC probe has no TLS: the image's health check over TLS
                check(
                    "chunkscope.healthcheck" in p.get("exec", {}).get("command", []),
                    f"{where}: {probe} must run chunkscope.healthcheck with TLS",
                )
            else:
                check(p.get("grpc", {}).get("port") == ports["grpc"], f"{where}: {probe} not gRPC")
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        keys = env["CHUNKSCOPE_API_KEYS_FILE"]
        check(any(keys.startswith(m + "/") for m in mounts), f"{where}: API key file not mounted")
        check(mounts["/models"].get("readOnly"), f"{where}: /models not read-only")
        if tls:
            for k in ("CHUNKSCOPE_TLS_CERT", "CHUNKSCOPE_TLS_KEY"):
                check(any(env[k].startswith(m + "/") for m in mounts), f"{where}: {k} not mounted")
        gpu = c["resources"].get("limits", {}).get("nvidia.com/gpu")
        check(bool(gpu) == variant.startswith("gpu"), f"{where}: nvidia.com/gpu limit")
        check(pod_matches(deploy["spec"]["selector"]["matchLabels"], labels), f"{where}: selector")
        services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
        headless = services["chunkscope-headless"]["spec"]
        check(headless.get("clusterIP") == "None", f"{where}: headless Service has a cluster IP")
        for s in services.values():
            check(pod_matches(s["spec"]["selector"], labels), f"{where}: Service selector")
        check(
            services["chunkscope-metrics"]["spec"]["ports"][0]["targetPort"] == "metrics",
            f"{where}: metrics Service port",
        )
        [pdb] = by_kind["PodDisruptionBudget"]
        check(pod_matches(pdb["spec"]["selector"]["matchLabels"], labels), f"{where}: PDB selector")
        check(
            deploy["spec"]["replicas"] > pdb["spec"]["minAvailable"], f"{where}: PDB blocks drains"
        )
        [policy] = by_kind["NetworkPolicy"]
        check(
            pod_matches(policy["spec"]["podSelector"]["matchLabels"], labels),
            f"{where}: NetworkPolicy does not select the pods",
        )
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        peers += [peer for rule in policy["spec"]["egress"] for peer in rule["to"]]
        for peer in peers:
            selector = peer.get("podSelector", {}).get("matchLabels", {})
            check(
                "app.kubernetes.io/part-of" not in selector
                and selector.get("app.kubernetes.io/name") != "chunkscope",
                f"{where}: NetworkPolicy peer selector carries chunkscope's own labels: {selector}",
            )


def main(build: str) -> int:
    check_dashboard()
    check_rules()
    check_compose(Path(build))
    check_kubernetes(Path(build))
    for p in problems:
        print("deploy check:", p, file=sys.stderr)
    print(f"check_static: {'FAILED' if problems else 'ok'} ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
