"""API keys and roles, the keys CLI, the audit log, and TLS / mutual TLS, on real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import perturbation_pb2 as pp
from helpers.certs import CertificateAuthority
from support import ServerProcess, run_cli, start_server


def _chunkscope(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, without the test session's key file in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "CHUNKSCOPE_API_KEYS_FILE"}
    return subprocess.run(
        [sys.executable, "-m", "chunkscope", *args],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip


def _fails(call, *args, **kwargs) -> ChunkscopeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChunkscopeError) as err:
        result = call(*args, **kwargs)
        if isinstance(result, Iterator):  # listings page lazily
            list(result)
    return err.value


def test_a_missing_or_wrong_key_gets_nothing_but_health(server: ServerProcess) -> None:
    with Client.connect(server.address, token="") as anonymous:
        assert anonymous.health() == "SERVING"
        err = _fails(anonymous.list_models)
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
        assert err.reason == "API_KEY_MISSING" and "Bearer" in err.message
        for call in (lambda: anonymous.get_model("x"), lambda: list(anonymous.list_dictionaries())):
            assert _fails(call).code == grpc.StatusCode.UNAUTHENTICATED
    for token in ("cks_000000000000_guess", "not-a-key", "cks_", "cks_" + "a" * 12 + "_"):
        with Client.connect(server.address, token=token) as forged:
            err = _fails(forged.list_models)
            assert err.code == grpc.StatusCode.UNAUTHENTICATED
            assert err.reason == "API_KEY_INVALID"
    # Reflection stays open, so tools like buf curl and grpcurl work without a key.
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(iter(stub.ServerReflectionInfo(iter(
            [reflection_pb2.ServerReflectionRequest(list_services="")]))))  # fmt: skip
        names = {s.name for s in reply.list_services_response.service}
        assert "chunkscope.v1.ModelService" in names


def test_roles_nest_monitor_analyst_admin(server: ServerProcess, api_keys: dict[str, str]) -> None:
    with Client.connect(server.address, token=api_keys["monitor"]) as monitor:
        list(monitor.list_models())  # read-only listing is allowed
        err = _fails(monitor.register_model, "m", "tiny-llama")
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        assert err.reason == "ROLE_NOT_PERMITTED"
        assert err.metadata == {"role": "monitor", "required_role": "admin"}
        perturb = pp.PerturbRequest(model={"name": "nope"}, input={"text": "x"})
        assert _fails(monitor.perturb, perturb).code == grpc.StatusCode.PERMISSION_DENIED
        # Detection passes the role check: what fails is the unknown model.
        detect = dp.DetectRequest(
            config=dp.DetectionConfig(model={"name": "nope"}, dictionary_ids=["dict-x"]),
            inputs=[dp.DetectInput(text="x")],
        )
        assert _fails(monitor.detect, detect).code != grpc.StatusCode.PERMISSION_DENIED
    with Client.connect(server.address, token=api_keys["analyst"]) as analyst:
        assert _fails(analyst.perturb, perturb).code == grpc.StatusCode.NOT_FOUND
        err = _fails(analyst.delete_dictionary, "dict-000000000000")
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        assert err.metadata["required_role"] == "admin"
    with Client.connect(server.address, token=api_keys["admin"]) as admin:
        assert _fails(admin.delete_dictionary, "dict-000000000000").code == (
            grpc.StatusCode.NOT_FOUND
        )


def test_keys_cli_creates_lists_and_revokes_and_the_server_follows(
    tmp_path: Path, model_root: Path
) -> None:
    data = tmp_path / "data"
    created = _chunkscope("keys", "create", "--data-dir", str(data), "--role", "analyst",
                          "--name", "dashboards")  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cks_")
    key_id = key.split("_")[1]
    stored = (data / "keys.json").read_text()
    assert key not in stored and key.split("_", 2)[2] not in stored  # only the hash is kept
    assert (data / "keys.json").stat().st_mode & 0o777 == 0o600

    listed = json.loads(_chunkscope("keys", "list", "--data-dir", str(data), "--json").stdout)
    assert [(k["id"], k["role"], k["name"]) for k in listed] == [(key_id, "analyst", "dashboards")]

    server = start_server(data, model_root, "--api-keys-file", str(data / "keys.json"))
    try:
        with Client.connect(server.address, token=key) as c:
            list(c.list_models())
            assert _chunkscope("keys", "revoke", "--data-dir", str(data), key_id).returncode == 0
            deadline = time.monotonic() + 10  # the server rereads the key file within a second
            while time.monotonic() < deadline:
                try:
                    list(c.list_models())
                except ChunkscopeError as err:
                    assert err.code == grpc.StatusCode.UNAUTHENTICATED
                    break
                time.sleep(0.2)
            else:
                pytest.fail("a revoked key was still accepted after 10 s")
        assert _chunkscope("keys", "revoke", "--data-dir", str(data), "nosuchkey").returncode == 1
        assert key not in server.log()  # keys are never logged
    finally:
        server.terminate()
    out = _chunkscope("audit", "--data-dir", str(data), "--method", "keys/").stdout
    audit = [json.loads(line) for line in out.splitlines()]
    assert [(a["method"], a["outcome"], a["request"]["id"]) for a in audit] == [
        ("keys/create", "OK", key_id),
        ("keys/revoke", "OK", key_id),
        ("keys/revoke", "NOT_FOUND", "nosuchkey"),
    ]


def test_state_changes_and_perturbations_are_audited_with_who_and_outcome(
    server: ServerProcess, api_keys: dict[str, str]
) -> None:
    admin_id, monitor_id = (api_keys[r].split("_")[1] for r in ("admin", "monitor"))
    with Client.connect(server.address, token=api_keys["monitor"]) as monitor:
        _fails(monitor.register_model, "audited", "tiny-llama")
    with Client.connect(server.address) as admin:
        admin.register_model("audited", "tiny-llama", wait=True)
        admin.perturb(pp.PerturbRequest(model={"name": "audited"}, input={"text": "the cat"}))
        admin.unregister_model("audited")
        list(admin.list_models())  # reads are not audited
    out = _chunkscope("audit", "--data-dir", str(server.data_dir), "--since", "2000-01-01")
    records = [json.loads(line) for line in out.stdout.splitlines()]
    mine = [
        (r["key_id"], r["role"], r["method"].rsplit("/", 1)[1], r["outcome"])
        for r in records
        if r["request"].get("name") == "audited"
        or r["request"].get("model", {}).get("name") == "audited"
    ]
    assert mine == [
        (monitor_id, "monitor", "RegisterModel", "PERMISSION_DENIED"),
        (admin_id, "admin", "RegisterModel", "OK"),
        (admin_id, "admin", "Perturb", "OK"),
        (admin_id, "admin", "UnregisterModel", "OK"),
    ]
    assert not any(r["method"].endswith("ListModels") for r in records)
    assert all(r["time"].endswith("+00:00") for r in records)


def test_auth_can_only_be_disabled_explicitly_and_says_so(tmp_path: Path, model_root: Path) -> None:
    server = start_server(tmp_path / "data", model_root, "--auth", "disabled")
    try:
        with Client.connect(server.address, token="") as c:
            assert list(c.list_models()) == []
    finally:
        server.terminate()
    assert "AUTH DISABLED" in server.log()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | bytes]:
    directory = tmp_path_factory.mktemp("pki")
    ca, rogue = CertificateAuthority(), CertificateAuthority("rogue CA")
    (directory / "ca.pem").write_bytes(ca.pem)
    server_cert, server_key = ca.issue("chunkscope", server=True).write(directory, "server")
    good, bad = ca.issue("monitor-box", server=False), rogue.issue("intruder", server=False)
    return {
        "ca": directory / "ca.pem", "ca_pem": ca.pem, "cert": server_cert, "key": server_key,
        "client_cert": good.cert, "client_key": good.key,
        "rogue_cert": bad.cert, "rogue_key": bad.key,
    }  # fmt: skip


def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(
    tmp_path: Path, model_root: Path, pki: dict
) -> None:
    server = start_server(tmp_path / "data", model_root,
                          "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]))  # fmt: skip
    try:
        with Client.connect(server.address, root_certificates=pki["ca_pem"], timeout=10) as c:
            assert c.health() == "SERVING" and list(c.list_models()) == []
        with Client.connect(server.address, timeout=5) as plain:
            assert _fails(plain.list_models).code == grpc.StatusCode.UNAVAILABLE
        with Client.connect(server.address, tls=True, timeout=5) as untrusting:  # system roots
            assert _fails(untrusting.list_models).code == grpc.StatusCode.UNAVAILABLE
        probe = _chunkscope("healthcheck", "--address", server.address, "--tls-ca", str(pki["ca"]))
        assert probe.returncode == 0 and probe.stdout.strip() == "SERVING", probe.stderr
    finally:
        server.terminate()


def test_mutual_tls_refuses_missing_and_foreign_client_certificates(
    tmp_path: Path, model_root: Path, pki: dict
) -> None:
    tls = ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])]
    server = start_server(tmp_path / "data", model_root, *tls, "--tls-client-ca", str(pki["ca"]))
    try:
        trusted = {"root_certificates": pki["ca_pem"], "timeout": 10}
        with Client.connect(server.address, private_key=pki["client_key"],
                            certificate_chain=pki["client_cert"], **trusted) as c:  # fmt: skip
            assert list(c.list_models()) == []
        with Client.connect(server.address, **trusted) as no_cert:
            assert _fails(no_cert.list_models).code == grpc.StatusCode.UNAVAILABLE
        with Client.connect(server.address, private_key=pki["rogue_key"],
                            certificate_chain=pki["rogue_cert"], **trusted) as rogue:  # fmt: skip
            assert _fails(rogue.list_models).code == grpc.StatusCode.UNAVAILABLE
        # The client commands: the same options, the same outcomes, an exit code per status.
        (tmp_path / "client.pem").write_bytes(pki["client_cert"])
        (tmp_path / "client.key").write_bytes(pki["client_key"])
        cli = ["models", "list", "--address", server.address, "--ca-cert", str(pki["ca"]),
               "--output", "json"]  # fmt: skip
        mutual = run_cli(None, *cli, "--client-cert", str(tmp_path / "client.pem"),
                         "--client-key", str(tmp_path / "client.key"))  # fmt: skip
        assert mutual.returncode == 0 and mutual.stdout == "", mutual.stderr
        alone = run_cli(None, *cli)
        assert alone.returncode == 24 and "UNAVAILABLE" in alone.stderr, alone.stderr  # 10 + 14
        half = run_cli(None, *cli, "--client-cert", str(tmp_path / "client.pem"))
        assert half.returncode == 2 and "go together" in half.stderr, half.stderr
    finally:
        server.terminate()


def test_tls_settings_are_checked_before_serving(tmp_path: Path, pki: dict) -> None:
    cases = [
        (["--tls-cert", str(pki["cert"])], "tls_cert and tls_key go together"),
        (["--tls-client-ca", str(pki["ca"])], "needs tls_cert"),
        (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki["key"])],
         "is not a readable file"),
        (["--auth", "off"], "must be required or disabled"),
    ]  # fmt: skip
    for flags, message in cases:
        result = _chunkscope("serve", "--data-dir", str(tmp_path / "d"), "--port", "0", *flags)
        assert result.returncode == 2 and message in result.stderr, result.stderr
