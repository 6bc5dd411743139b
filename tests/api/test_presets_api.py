"""Intervention presets through the Python client against real servers: stored, versioned and
audited as policies are (GuardService), and named by Generate and Perturb in `presets`, where
they act exactly as the same interventions given inline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import guard_pb2 as gp
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ServerProcess, start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
PROMPT = "On day 3 the cat slept near the"
MODEL = "ps-lm"
STEER = "blocks.0.resid_post"  # before the last of the tiny model's two blocks
WIDTH = 32  # the tiny model's hidden size


@pytest.fixture(scope="module")
def setup(server: ServerProcess) -> Iterator[tuple[Client, str]]:
    """A tiny LM with a PA dictionary (cat, cake) at the steering hook point."""
    with Client.connect(server.address, timeout=120) as c:
        c.register_model(MODEL, "tiny-llama", wait=True)
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": MODEL}, hook_points=[STEER],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        yield c, pa.id
        c.unregister_model(MODEL)


def _vector(seed: int, shape: tuple[int, ...] = (WIDTH,)) -> common_pb2.Tensor:
    v = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return common_pb2.Tensor(shape=list(shape), dtype=common_pb2.DTYPE_FLOAT32, data=v.tobytes())


def _push(seed: int, alpha: float = 40.0) -> pp.Intervention:
    """A strong push along a fixed direction on every position: greedy decoding changes."""
    return pp.Intervention(vector=_vector(seed), mode=pp.INTERVENTION_MODE_ADD, hook_point=STEER,
                           alpha=alpha,
                           positions=pp.Positions(all_prompt=True, generated=True))  # fmt: skip


def _inhibit(dictionary: str) -> pp.Intervention:
    return pp.Intervention(chunk=pp.ChunkRef(dictionary_id=dictionary, entry_id=0),
                           mode=pp.INTERVENTION_MODE_INHIBIT,
                           positions=pp.Positions(all_prompt=True, generated=True))  # fmt: skip


def _preset(name: str, *interventions: pp.Intervention, **kw: Any) -> gp.InterventionPreset:
    return gp.InterventionPreset(name=name, interventions=list(interventions), **kw)


def _tokens(c: Client, **kw: Any) -> list[int]:
    """Greedy token ids of the perturbed arm."""
    request = pp.GenerateRequest(model={"name": MODEL}, prompt=dp.DetectInput(text=PROMPT),
                                 sampling=pp.SamplingParams(max_new_tokens=12), **kw)  # fmt: skip
    steps = list(c.generate(request))
    assert steps[-1].done
    return [s.token_id for s in steps if not s.done and s.arm == pp.ARM_PERTURBED]


def _error(call: Any, *args: Any, **kwargs: Any) -> ChunkscopeError:
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def test_presets_are_versioned_listed_and_deleted_as_policies_are(setup: tuple) -> None:
    c, pa = setup
    first = c.put_preset(_preset("calm", _inhibit(pa), description="no cats"), expected_version=0)
    assert first.version == 1 and first.author_key_id and first.create_time.seconds > 0
    assert list(first.interventions) == [_inhibit(pa)] and first.description == "no cats"
    second = c.put_preset(_preset("calm", _inhibit(pa), _push(1)), expected_version=1)
    assert second.version == 2 and len(second.interventions) == 2
    assert c.get_preset("calm") == second and c.get_preset("calm", 1) == first
    assert [p.version for p in c.list_presets("calm")] == [2, 1]
    c.put_preset(_preset("another", _push(2)))
    names = [(p.name, p.version) for p in c.list_presets()]
    assert ("another", 1) in names and ("calm", 2) in names
    assert [p.name for p in c.list_presets(page_size=1)] == sorted(n for n, _ in names)

    e = _error(c.put_preset, _preset("calm", _push(3)), expected_version=1)  # lost update
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and e.reason == "PRESET_VERSION_CONFLICT"
    assert e.metadata["latest_version"] == "2" and c.get_preset("calm").version == 2
    e = _error(c.delete_preset, "calm", expected_version=1)
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and c.get_preset("calm").version == 2

    assert c.delete_preset("calm", expected_version=2).version == 2
    for call in (lambda: c.get_preset("calm"), lambda: c.get_preset("calm", 1),
                 lambda: list(c.list_presets("calm"))):  # fmt: skip
        e = _error(call)
        assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "PRESET_NOT_FOUND"
    assert "calm" not in [p.name for p in c.list_presets()]
    again = c.put_preset(_preset("calm", _push(4)), expected_version=0)
    assert again.version == 4  # 3 was the deletion
    # A preset and a policy may share a name: they are different kinds of document.
    e = _error(c.get_policy, "calm")
    assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "POLICY_NOT_FOUND"


def test_generate_with_a_preset_is_generate_with_its_interventions_inline(setup: tuple) -> None:
    c, pa = setup
    interventions = [_push(5), _inhibit(pa)]
    c.put_preset(_preset("steer", *interventions))
    plain = _tokens(c)
    inline = _tokens(c, interventions=interventions)
    named = _tokens(c, presets=["steer"])
    assert len(plain) == len(inline) == 12
    assert named == inline and inline != plain
    assert _tokens(c, presets=["steer@1"]) == inline

    # Perturb: the same numbers, inline or named; and inline ones come first, presets after.
    def perturb(**kw: Any) -> pp.PerturbResponse:
        return c.perturb(pp.PerturbRequest(model={"name": MODEL}, input=dp.DetectInput(
            text=PROMPT), top_k=10, **kw))  # fmt: skip

    by_name, by_value = perturb(presets=["steer"]), perturb(interventions=interventions)
    assert by_name.kl_divergence == by_value.kl_divergence > 0
    assert by_name.applied == by_value.applied > 0
    assert list(by_name.top_after) == list(by_value.top_after)
    both = perturb(interventions=[_push(6)], presets=["steer"])
    assert both.kl_divergence == perturb(interventions=[_push(6), *interventions]).kl_divergence


def test_a_pinned_version_keeps_working_after_the_preset_changes(setup: tuple) -> None:
    c, _ = setup
    c.put_preset(_preset("pinned", _push(7)))
    version_one = _tokens(c, interventions=[_push(7)])
    c.put_preset(_preset("pinned", _push(8)))
    version_two = _tokens(c, interventions=[_push(8)])
    assert version_one != version_two
    assert _tokens(c, presets=["pinned@1"]) == version_one
    assert _tokens(c, presets=["pinned"]) == version_two == _tokens(c, presets=["pinned@2"])


def test_presets_are_refused_by_field(setup: tuple) -> None:
    c, pa = setup
    e = _error(_tokens, c, presets=["no-such-preset"])
    assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "PRESET_NOT_FOUND"
    assert e.message.startswith("presets[0]: ") and e.metadata["field"] == "presets[0]"
    c.put_preset(_preset("known", _push(9)))
    e = _error(_tokens, c, presets=["known", "known@5"])
    assert e.code is grpc.StatusCode.NOT_FOUND and e.metadata["field"] == "presets[1]"
    for bad in ("Known", "known@", "known@0", "known@x", "a b", ""):
        e = _error(_tokens, c, presets=["known", bad])
        assert e.code is grpc.StatusCode.INVALID_ARGUMENT, bad
        assert e.field_violations[0][0] == "presets[1]", bad
    e = _error(_tokens, c, presets=["known"] * 17)
    assert e.field_violations[0][0] == "presets"
    e = _error(_tokens, c, interventions=[_push(1)] * 32, presets=["known"])
    assert e.field_violations[0][0] == "presets" and "32" in e.field_violations[0][1]

    # Faults only the request can show (the model's width, the prompt's length) name the preset.
    c.put_preset(_preset("wide", pp.Intervention(
        vector=_vector(1, (WIDTH * 2,)), mode=pp.INTERVENTION_MODE_ADD, hook_point=STEER,
        alpha=1.0, positions=pp.Positions(indices=[0]))))  # fmt: skip
    e = _error(_tokens, c, interventions=[_push(1)], presets=["known", "wide"])
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.field_violations[0][0].startswith("presets[1].interventions[0].vector"), e.message
    c.put_preset(_preset("far", pp.Intervention(
        chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0), mode=pp.INTERVENTION_MODE_INHIBIT,
        positions=pp.Positions(indices=[500]))))  # fmt: skip
    e = _error(_tokens, c, presets=["far"])
    assert e.field_violations[0][0] == "presets[0].interventions[0].positions.indices[0]"

    # PutPreset checks what it can without a model and a prompt.
    def put_field(preset: gp.InterventionPreset) -> tuple[grpc.StatusCode, str]:
        e = _error(c.put_preset, preset)
        return e.code, e.field_violations[0][0] if e.field_violations else e.message

    bad_mode = pp.Intervention(vector=_vector(1), hook_point=STEER, alpha=1.0,
                               positions=pp.Positions(indices=[0]))  # fmt: skip
    no_target = pp.Intervention(mode=pp.INTERVENTION_MODE_ADD, positions=pp.Positions(indices=[0]))
    no_positions = pp.Intervention(vector=_vector(1), mode=pp.INTERVENTION_MODE_ADD,
                                   hook_point=STEER, alpha=1.0)  # fmt: skip
    flat = pp.Intervention(
        vector=_vector(1, (4, 8)),
        mode=pp.INTERVENTION_MODE_ADD,
        hook_point=STEER,
        alpha=1.0,
        positions=pp.Positions(indices=[0]),
    )
    entry = pp.Intervention(
        chunk=pp.ChunkRef(dictionary_id=pa, entry_id=99),
        mode=pp.INTERVENTION_MODE_INHIBIT,
        positions=pp.Positions(indices=[0]),
    )
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert put_field(_preset("Bad Name", _push(1))) == (invalid, "preset.name")
    assert put_field(_preset("empty")) == (invalid, "preset.interventions")
    assert put_field(_preset("many", *[_push(1)] * 33)) == (invalid, "preset.interventions")
    assert put_field(_preset("p", _push(1), bad_mode)) == (invalid, "preset.interventions[1].mode")
    assert put_field(_preset("p", no_target)) == (invalid, "preset.interventions[0]")
    assert put_field(_preset("p", no_positions)) == (invalid, "preset.interventions[0].positions")
    assert put_field(_preset("p", flat)) == (invalid, "preset.interventions[0].vector.shape")
    assert put_field(_preset("p", entry)) == (invalid, "preset.interventions[0].chunk.entry_id")
    missing = pp.Intervention(chunk=pp.ChunkRef(dictionary_id="dict-000000000000", entry_id=0),
                              mode=pp.INTERVENTION_MODE_INHIBIT,
                              positions=pp.Positions(indices=[0]))  # fmt: skip
    code, message = put_field(_preset("p", _push(1), missing))
    assert code is grpc.StatusCode.NOT_FOUND
    assert message.startswith("preset.interventions[1].chunk.dictionary_id: ")
    e = _error(c.get_preset, "p")  # nothing refused was stored
    assert e.code is grpc.StatusCode.NOT_FOUND


def test_only_admins_change_presets_and_analysts_apply_them(
    setup: tuple, server: ServerProcess, api_keys: dict[str, str]
) -> None:
    c, _ = setup
    c.put_preset(_preset("roles", _push(10)))
    expected = _tokens(c, interventions=[_push(10)])
    for role in ("monitor", "analyst"):
        with Client.connect(server.address, token=api_keys[role], timeout=60) as other:
            e = _error(other.put_preset, _preset("roles", _push(11)))
            assert e.code is grpc.StatusCode.PERMISSION_DENIED and e.metadata["role"] == role
            e = _error(other.delete_preset, "roles")
            assert e.code is grpc.StatusCode.PERMISSION_DENIED
    with Client.connect(server.address, token=api_keys["analyst"], timeout=60) as analyst:
        assert _tokens(analyst, presets=["roles"]) == expected
        # Whoever may name a preset in Generate may read it.
        assert analyst.get_preset("roles").interventions[0] == _push(10)
        assert "roles" in [p.name for p in analyst.list_presets()]
    with Client.connect(server.address, token=api_keys["monitor"], timeout=60) as monitor:
        e = _error(monitor.get_preset, "roles")
        assert e.code is grpc.StatusCode.PERMISSION_DENIED
    assert c.get_preset("roles").version == 1  # the refused calls changed nothing

    records = [
        json.loads(line) for line in (server.data_dir / "audit.jsonl").read_text().splitlines()
    ]
    changes = [
        r
        for r in records
        if r["method"].rsplit("/")[-1] in ("PutPreset", "DeletePreset")
        and r["request"].get("preset", {}).get("name", r["request"].get("name")) == "roles"
    ]
    assert [(r["method"].rsplit("/")[-1], r["outcome"], r["role"]) for r in changes] == [
        ("PutPreset", "OK", "admin"),
        ("PutPreset", "PERMISSION_DENIED", "monitor"),
        ("DeletePreset", "PERMISSION_DENIED", "monitor"),
        ("PutPreset", "PERMISSION_DENIED", "analyst"),
        ("DeletePreset", "PERMISSION_DENIED", "analyst"),
    ]
    assert changes[0]["detail"] == "preset roles version 1"
    assert not any(r["method"].endswith(("/GetPreset", "/ListPresets")) for r in records)


def test_presets_put_on_one_replica_serve_generate_on_another(
    setup: tuple, postgres: Any, model_root: Path, tmp_path: Path
) -> None:
    c, pa = setup
    expected = _tokens(c, interventions=[_push(12), _inhibit(pa)])
    archive = c.export_dictionary(pa)
    store = str(postgres.create_database("preset_replicas"))
    a = start_server(tmp_path / "a", model_root, "--store", store)
    b = start_server(tmp_path / "b", model_root, "--store", store)
    with Client.connect(a.address, timeout=120) as ca, Client.connect(b.address, timeout=120) as cb:
        ca.register_model(MODEL, "tiny-llama", wait=True)
        ca.import_dictionary(archive)
        ca.put_preset(_preset("shared", _push(12), _inhibit(pa)))
        assert cb.get_preset("shared").version == 1
        deadline = time.monotonic() + 120  # b loads the model a registered (NOTIFY)
        while True:
            try:
                if cb.get_model(MODEL).state == mp.MODEL_STATE_READY:
                    break
            except ChunkscopeError:
                pass
            assert time.monotonic() < deadline, "replica b never loaded the model"
            time.sleep(0.2)
        assert _tokens(cb, presets=["shared"]) == expected
        cb.put_preset(_preset("shared", _push(13)), expected_version=1)
        assert ca.get_preset("shared").version == 2
        assert _tokens(ca, presets=["shared@1"]) == expected
        e = _error(ca.put_preset, _preset("shared", _push(14)), expected_version=1)
        assert e.code is grpc.StatusCode.FAILED_PRECONDITION
    a.terminate()
    b.terminate()
