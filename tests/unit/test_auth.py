"""The key file and the role table, in-process (the API tests cover them over the wire)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from chunkscope.auth import (
    REQUIRED_ROLE,
    KeyFile,
    KeyFileError,
    permits,
    read_key_file,
    required_role,
)


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


# ----- a key file that cannot be trusted admits no one ----------------------------------------


def _keys(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys.json"
    key, _ = KeyFile(path).create("admin")
    return path, key


def test_the_key_file_is_created_0600_and_accepted(tmp_path: Path) -> None:
    path, key = _keys(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert KeyFile(path).verify(key) is not None
    os.chmod(path, 0o644)  # readable by others is allowed: only hashes are stored
    assert KeyFile(path).verify(key) is not None


def test_a_group_or_world_writable_key_file_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, key = _keys(tmp_path)
    for mode in (0o666, 0o620, 0o602):
        os.chmod(path, mode)
        assert KeyFile(path).verify(key) is None, oct(mode)
        with pytest.raises(KeyFileError, match="writable by group or others"):
            read_key_file(path)
    assert "chmod 600" in caplog.text


def test_a_symlinked_key_file_is_not_followed(tmp_path: Path) -> None:
    path, key = _keys(tmp_path)
    other = tmp_path / "other.json"
    other_key, _ = KeyFile(other).create("admin")
    path.unlink()
    path.symlink_to(other)
    reader = KeyFile(path)
    assert reader.verify(other_key) is None  # the link's target is not read
    assert reader.verify(key) is None
    with pytest.raises(KeyFileError, match="symbolic link"):
        read_key_file(path)


def test_a_fifo_in_place_of_the_key_file_does_not_block_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    os.mkfifo(path, 0o600)
    reader = KeyFile(path)
    done = threading.Event()
    # A blocking open or read of the FIFO would never return: run it where a hang can be seen.
    worker = threading.Thread(target=lambda: (reader.refresh(force=True), done.set()), daemon=True)
    worker.start()
    assert done.wait(30), "reading a FIFO key file blocked"
    assert reader.records() == []
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_key_file(path)


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,  # nested deeper than the JSON parser recurses
        b"\xff\xfe not utf-8",
        b'{"keys": {"id": "x"}}',
        b'{"keys": [{"id": "0123456789ab", "role": ["admin"], "sha256": "0"}]}',
        b'{"keys": [{"id": "0123456789ab", "role": "root", "sha256": "' + b"0" * 64 + b'"}]}',
        b'{"keys": [7]}',
        b'{"keys": [{"id": "0123456789ab", "role": "admin", "sha256": "'
        + b"0" * 64
        + b'", "created_at": 1'
        + b"0" * 400
        + b"}]}",
        b"[]",
    ],
)
def test_unreadable_content_refuses_every_key_and_keeps_none_of_the_old_ones(
    tmp_path: Path, content: bytes
) -> None:
    path, key = _keys(tmp_path)
    reader = KeyFile(path)
    assert reader.verify(key) is not None  # the good file was loaded once
    path.write_bytes(content)
    reader.refresh(force=True)
    assert reader.verify(key) is None  # not the stale key set, and no exception
    reader.refresh(force=True)  # the same bad file again: still closed
    assert reader.match(key) is None
    with pytest.raises(KeyFileError):
        read_key_file(path)


def test_the_keys_tool_refuses_to_overwrite_a_file_it_cannot_trust(tmp_path: Path) -> None:
    path, key = _keys(tmp_path)
    os.chmod(path, 0o666)
    with pytest.raises(KeyFileError):
        KeyFile(path).create("monitor")
    os.chmod(path, 0o600)
    assert KeyFile(path).verify(key) is not None  # nothing was lost
