"""The key file and the role table, in-process (the API tests cover them over the wire)."""

from __future__ import annotations

import os
from pathlib import Path

from chunkscope.auth import REQUIRED_ROLE, KeyFile, permits, required_role


def test_keys_verify_until_revoked_and_only_hashes_are_stored(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    key, record = keys.create("analyst", "dashboards")
    assert keys.verify(key) == record
    assert keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.verify("cks_" + record.id + "_guess") is None
    assert key.split("_", 2)[2] not in (tmp_path / "keys.json").read_text()
    keys.revoke(record.id)
    reader = KeyFile(tmp_path / "keys.json")  # a server process reading the same file
    assert reader.verify(key) is None


def test_an_unreadable_key_file_admits_no_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key, _ = KeyFile(path).create("admin")
    path.write_text('{"keys": [{"id": ')
    os.utime(path, ns=(1, 1))  # a different stamp, so the reader reloads
    assert KeyFile(path).verify(key) is None


def test_roles_nest_and_unknown_methods_need_admin() -> None:
    assert permits("monitor", "/chunkscope.v1.DetectionService/Detect")
    assert not permits("monitor", "/chunkscope.v1.PerturbationService/Perturb")
    assert permits("analyst", "/chunkscope.v1.PerturbationService/Perturb")
    assert not permits("analyst", "/chunkscope.v1.ModelService/RegisterModel")
    assert permits("admin", "/chunkscope.v1.ModelService/RegisterModel")
    assert required_role("/chunkscope.v1.ModelService/SomethingNew") == "admin"
    assert not permits("nobody", "/chunkscope.v1.ModelService/ListModels")
    assert set(REQUIRED_ROLE.values()) == {"monitor", "analyst", "admin"}


def test_every_rpc_of_every_service_has_a_role() -> None:
    from google.protobuf import descriptor_pool

    from chunkscope.server import SERVICE_NAMES

    pool = descriptor_pool.Default()
    methods = {
        f"{name}/{m.name}" for name in SERVICE_NAMES for m in pool.FindServiceByName(name).methods
    }
    assert methods == set(REQUIRED_ROLE)
