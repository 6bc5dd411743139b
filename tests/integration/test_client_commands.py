"""The client commands of `chunkscope` (models, dictionaries, detect, generate, analysis) run as
real subprocesses against a real server; their JSON agrees with what the Python client gets."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chunkscope_client import Client
from chunkscope_client.v1 import analysis_pb2 as apb
from chunkscope_client.v1 import detection_pb2 as dtp
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from chunkscope_client.v1 import perturbation_pb2 as ppb
from support import ServerProcess
from support import run_cli as run

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HOOK = "blocks.1.resid_post"
MODEL = "cli-lm"


def ok_json(server: ServerProcess, *args: str) -> list[dict[str, Any]]:
    done = run(server, *args, "--output", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def client_module(server: ServerProcess) -> Iterator[Client]:
    with Client.connect(server.address, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def registered(server: ServerProcess, client_module: Client) -> Iterator[dict[str, Any]]:
    [model] = ok_json(server, "models", "register", MODEL, "tiny-llama")
    yield model
    client_module.unregister_model(MODEL)


@pytest.fixture(scope="module")
def extracted(
    server: ServerProcess, registered: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """The JSON lines of a population-averaging extraction through the command."""
    corpus = tmp_path_factory.mktemp("corpus") / "train.txt"
    corpus.write_text("\n".join(TRAIN) + "\n")
    return ok_json(server, "dictionaries", "extract", "--model", MODEL, "--hook-point", HOOK,
                   "--concepts", "cat,cake", "--texts-file", str(corpus),
                   "--params", '{"n_samples": 10}', "--seed", "0")  # fmt: skip


@pytest.fixture(scope="module")
def dictionary_id(extracted: list[dict[str, Any]]) -> str:
    return str(extracted[-1]["result"]["dictionaries"][0]["id"])


def test_models_register_list_show_hook_points(
    server: ServerProcess, client_module: Client, registered: dict[str, Any]
) -> None:
    truth = client_module.get_model(MODEL)
    assert registered["name"] == MODEL and registered["state"] == "MODEL_STATE_READY"
    assert registered["source_path"] == truth.source_path and truth.source_path.endswith(
        "tiny-llama"
    )
    assert registered["hidden_size"] == 32 and registered["num_blocks"] == 2
    assert registered["content_hash"] == truth.content_hash
    listed = ok_json(server, "models", "list")
    assert [m for m in listed if m["name"] == MODEL] == [registered]
    assert ok_json(server, "models", "show", MODEL) == [registered]
    points = ok_json(server, "models", "hook-points", MODEL)
    assert [p["name"] for p in points] == [h.name for h in client_module.list_hook_points(MODEL)]
    assert HOOK in [p["name"] for p in points]

    table = run(server, "models", "list")
    assert table.returncode == 0 and MODEL in table.stdout and "ready" in table.stdout


def test_models_unregister_then_show_is_not_found(server: ServerProcess) -> None:
    ok_json(server, "models", "register", "cli-gone", "rnn-elman")
    [gone] = ok_json(server, "models", "unregister", "cli-gone")
    assert gone["name"] == "cli-gone"
    done = run(server, "models", "show", "cli-gone")
    assert done.returncode == 15 and done.stdout == ""  # 10 + NOT_FOUND (5)
    assert done.stderr.startswith("error: NOT_FOUND: ") and "cli-gone" in done.stderr
    assert "(reason " in done.stderr


def test_extract_streams_progress_lines_then_the_dictionary(
    extracted: list[dict[str, Any]], client_module: Client
) -> None:
    *progress, last = extracted
    phases = [p["progress"]["phase"] for p in progress]
    assert phases[0] == "EXTRACTION_PHASE_CAPTURE" and "EXTRACTION_PHASE_FIT" in phases
    assert phases[-1] == "EXTRACTION_PHASE_STORE"
    [d] = last["result"]["dictionaries"]
    assert d["hook_point"] == HOOK and d["model"]["name"] == MODEL
    assert [e["label"] for e in d["entries"]] == ["cat", "cake"]
    assert [int(e["count"]) for e in d["entries"]] == [14, 14]  # int64: a string in JSON
    assert d["method"] == "CHUNK_METHOD_POPULATION_AVERAGING"
    stored = client_module.get_dictionary(d["id"])
    assert [e.n_neurons for e in stored.entries] == [e["n_neurons"] for e in d["entries"]]


def test_extract_table_shows_phase_names(
    server: ServerProcess, registered: dict[str, Any], client_module: Client
) -> None:
    done = run(server, "dictionaries", "extract", "--model", MODEL, "--hook-point", HOOK,
               "--concepts", "cat", *[a for t in TRAIN for a in ("--text", t)],
               "--params", '{"n_samples": 10}', "--description", "cli table run")  # fmt: skip
    assert done.returncode == 0, done.stderr
    for phase in ("capture", "fit", "store"):
        assert phase in done.stderr, done.stderr
    assert "extracted 1 dictionary" in done.stdout and "cat" in done.stdout
    [d] = [d for d in client_module.list_dictionaries(MODEL) if d.description == "cli table run"]
    assert d.id in done.stdout
    # The hook point the honest scores recommend, once.
    assert done.stdout.count(f"recommended for 'cat': {HOOK} ({d.id} entry 0") == 1, done.stdout
    client_module.delete_dictionary(d.id)


def test_extract_quiet_from_json_files_prints_only_the_ids(
    server: ServerProcess, registered: dict[str, Any], client_module: Client, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({"train": TRAIN, "heldout": TRAIN[:3]}))
    done = run(server, "dictionaries", "extract", "--model", MODEL, "--hook-point", HOOK,
               "--hook-point", "blocks.0.resid_post", "--concepts", "cat",
               "--texts-file", str(texts), "--texts-key", "train", "--heldout-file", str(texts),
               "--params", '{"n_samples": 10}', "--description", "cli quiet run", "-q")  # fmt: skip
    assert done.returncode == 0, done.stderr
    stored = [d for d in client_module.list_dictionaries(MODEL) if d.description == "cli quiet run"]
    assert sorted(done.stdout.split()) == sorted(d.id for d in stored) and len(stored) == 2
    full = client_module.get_dictionary(stored[0].id)
    assert full.n_inputs == len(TRAIN) and full.entries[0].heldout.positives == 3
    listed = run(server, "dictionaries", "list", "--model", MODEL, "-q")
    assert set(done.stdout.split()) <= set(listed.stdout.split())
    missing = run(server, "dictionaries", "extract", "--model", MODEL, "--hook-point", HOOK,
                  "--concepts", "cat", "--texts-file", str(texts))  # fmt: skip
    assert missing.returncode == 2 and "'texts'" in missing.stderr, missing.stderr
    for d in stored:
        client_module.delete_dictionary(d.id)


def test_extract_preset_flag_picks_the_pa_settings_and_params_override_it(
    server: ServerProcess, registered: dict[str, Any], client_module: Client
) -> None:
    texts = [a for t in TRAIN for a in ("--text", t)]
    stored = {}
    for name, extra in (
        ("default", ()),
        ("authors", ("--preset", "authors")),
        ("override", ("--preset", "authors", "--params",
                      '{"radius_rule": "PA_RADIUS_RULE_NEGATIVES", "radius_scale": 0.5}')),
    ):  # fmt: skip
        done = run(server, "dictionaries", "extract", "--model", MODEL, "--hook-point", HOOK,
                   "--concepts", "cat", *texts, "--description", f"cli preset {name}", "-q",
                   *extra)  # fmt: skip
        assert done.returncode == 0, done.stderr
        [d] = [d for d in client_module.list_dictionaries(MODEL)
               if d.description == f"cli preset {name}"]  # fmt: skip
        assert done.stdout.split() == [d.id]
        stored[name] = json.loads(client_module.get_dictionary(d.id).parameters_json)
        client_module.delete_dictionary(d.id)
    pick = ("preset", "radius_rule", "radius_scale", "sample_all", "criterion")
    assert [stored["default"][k] for k in pick] == [
        "recommended", "negatives", 0.9, True, "tpr_at_fpr"]  # fmt: skip
    assert [stored["authors"][k] for k in pick] == ["authors", "samples", 1.0, False, "accuracy"]
    assert [stored["override"][k] for k in pick] == [
        "authors", "negatives", 0.5, False, "accuracy"]  # fmt: skip
    wrong = run(server, "dictionaries", "extract", "--model", MODEL, "--hook-point", HOOK,
                "--method", "cosine-dictionary", *texts, "--preset", "authors")  # fmt: skip
    assert wrong.returncode == 2 and "--preset is for" in wrong.stderr, wrong.stderr


def test_dictionaries_list_show_export_import_delete(
    server: ServerProcess, dictionary_id: str, tmp_path: Path, client_module: Client
) -> None:
    listed = ok_json(server, "dictionaries", "list", "--model", MODEL)
    assert dictionary_id in [d["id"] for d in listed]
    [shown] = ok_json(server, "dictionaries", "show", dictionary_id)
    assert shown["id"] == dictionary_id and [e["label"] for e in shown["entries"]] == [
        "cat",
        "cake",
    ]

    archive = tmp_path / "dict.tar"
    [summary] = ok_json(server, "dictionaries", "export", dictionary_id, "--out", str(archive))
    assert summary["bytes"] == archive.stat().st_size > 0
    assert archive.read_bytes() == client_module.export_dictionary(dictionary_id)

    before = client_module.get_dictionary(dictionary_id, include_prototypes=True)
    again = run(server, "dictionaries", "import", str(archive))
    assert again.returncode == 16 and "(reason DICTIONARY_EXISTS)" in again.stderr  # ALREADY_EXISTS
    [deleted] = ok_json(server, "dictionaries", "delete", dictionary_id)
    assert deleted["id"] == dictionary_id
    assert dictionary_id not in [d["id"] for d in ok_json(server, "dictionaries", "list")]
    [imported] = ok_json(server, "dictionaries", "import", str(archive))
    assert imported["id"] == dictionary_id and imported["hook_point"] == HOOK
    assert imported["n_entries"] == 2
    after = client_module.get_dictionary(dictionary_id, include_prototypes=True)
    assert after.entries == before.entries  # the round trip kept every entry, prototypes too


def _detect_request(dictionary: str, *texts: str) -> dtp.DetectRequest:
    return dtp.DetectRequest(
        config=dtp.DetectionConfig(model={"name": MODEL}, dictionary_ids=[dictionary]),
        inputs=[dtp.DetectInput(text=t) for t in texts],
    )


def test_detect_json_is_what_the_client_gets(
    server: ServerProcess, dictionary_id: str, client_module: Client
) -> None:
    texts = (TRAIN[3], "A quiet morning without animals.")
    [reply] = ok_json(server, "detect", "--model", MODEL, "--dictionary", dictionary_id, *texts)
    truth = client_module.detect(_detect_request(dictionary_id, *texts))
    got = dtp.DetectResponse()
    from google.protobuf import json_format

    json_format.ParseDict(reply, got)
    assert list(got.results) == list(truth.results)
    counts = {s["label"]: s["count"] for s in reply["results"][0]["summaries"]}
    assert counts["cat"] >= 1


def test_detect_table_highlights_the_firing_token_and_spans_point_at_it(
    server: ServerProcess, dictionary_id: str
) -> None:
    text = TRAIN[3]
    colour = run(server, "detect", "--model", MODEL, "--dictionary", dictionary_id, text,
                 env={"FORCE_COLOR": "1"})  # fmt: skip
    assert colour.returncode == 0, colour.stderr
    # a piece of "cat" styled (the tiny tokenizer may split the word), then its label, dimmed
    marked = re.findall(r"\x1b\[[0-9;]+m([^\x1b]+)\x1b\[0m\x1b\[[0-9;]+m\[cat\]", colour.stdout)
    assert marked and all(piece.strip() and piece.strip() in "cat" for piece in marked), (
        colour.stdout
    )
    plain = run(server, "detect", "--model", MODEL, "--dictionary", dictionary_id, text)
    assert "\x1b[" not in plain.stdout and "[cat]" in plain.stdout  # no colour into a pipe
    spans = run(server, "detect", "--model", MODEL, "--dictionary", dictionary_id, "--spans", text)
    assert spans.returncode == 0, spans.stderr
    rows = [line.split("\t") for line in spans.stdout.splitlines()]
    cats = [r for r in rows if r[3] == "cat"]
    assert cats and all(text[int(r[1]) : int(r[2])].strip() in "cat" for r in cats)
    assert all(r[0] == "0" for r in rows)


def _generate_args(dictionary: str) -> list[str]:
    return ["generate", "--model", MODEL, "--prompt", "On day 9 the",
            "--add", f"{dictionary}:0:30", "--control", "--max-new-tokens", "8",
            "--temperature", "0.8", "--top-k", "50", "--seed", "7"]  # fmt: skip


def test_generate_streams_both_arms_with_the_clients_texts(
    server: ServerProcess, dictionary_id: str, client_module: Client
) -> None:
    lines = ok_json(server, *_generate_args(dictionary_id))
    done = {m["arm"]: m["text"] for m in lines if m.get("done")}
    tokens = [m for m in lines if not m.get("done")]
    assert set(done) == {"ARM_PERTURBED", "ARM_CONTROL"} and tokens
    request = ppb.GenerateRequest(
        model={"name": MODEL}, prompt=dtp.DetectInput(text="On day 9 the"), control=True,
        interventions=[ppb.Intervention(
            chunk=ppb.ChunkRef(dictionary_id=dictionary_id, entry_id=0),
            mode=ppb.INTERVENTION_MODE_ADD, alpha=30.0,
            positions=ppb.Positions(all_prompt=True, generated=True))],
        sampling=ppb.SamplingParams(max_new_tokens=8, temperature=0.8, top_k=50, seed=7),
    )  # fmt: skip
    truth = {ppb.Arm.Name(m.arm): m.text for m in client_module.generate(request) if m.done}
    assert done == truth
    for arm in done:  # one message per new token and arm (no --stop-at-eos)
        assert [m["step"] for m in tokens if m["arm"] == arm] == list(range(8))

    table = run(server, *_generate_args(dictionary_id))
    assert table.returncode == 0, table.stderr
    assert "perturbed" in table.stdout and "control" in table.stdout
    assert "On day 9 the" in table.stdout


def test_generate_chat_sends_a_user_message_and_message_relative_positions(
    server: ServerProcess, dictionary_id: str, client_module: Client
) -> None:
    client_module.register_model("cli-chat", "tiny-chat", wait=True)  # tiny-llama + a template
    try:
        args = ["generate", "--model", "cli-chat", "--chat", "--prompt", "On day 9 the cat",
                "--max-new-tokens", "4", "--temperature", "0.8", "--seed", "7"]  # fmt: skip
        lines = ok_json(server, *args)
        done = {m["arm"]: m["text"] for m in lines if m.get("done")}
        formatted = "user: On day 9 the cat\nassistant:"  # what the template makes of it
        request = ppb.GenerateRequest(
            model={"name": "cli-chat"}, prompt=dtp.DetectInput(text=formatted),
            sampling=ppb.SamplingParams(max_new_tokens=4, temperature=0.8, seed=7),
        )  # fmt: skip
        truth = {ppb.Arm.Name(m.arm): m.text for m in client_module.generate(request) if m.done}
        assert done == truth and done["ARM_PERTURBED"]
        # tail:COUNT[:SKIP] is resolved by the server: too few tokens names the field.
        short = run(server, *args, "--add", f"{dictionary_id}:0:30", "--positions", "tail:40:1")
        assert short.returncode == 13, short.stderr  # 10 + INVALID_ARGUMENT (3)
        assert "interventions[0].positions.message_tail.count" in short.stderr
        bad = run(server, *args, "--add", f"{dictionary_id}:0:30", "--positions", "tail:x")
        assert bad.returncode == 2 and "tail:COUNT[:SKIP]" in bad.stderr
    finally:
        client_module.unregister_model("cli-chat")


def in_terminal(server: ServerProcess, *args: str) -> tuple[int, str]:
    """`python -m chunkscope ARGS` on a pseudo-terminal (120 columns): its exit code and all
    it drew, escape sequences included, as a user's terminal would receive it."""
    import fcntl
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    environ.update(CHUNKSCOPE_ADDRESS=server.address, TERM="xterm-256color", COLUMNS="120")
    process = subprocess.Popen([sys.executable, "-m", "chunkscope", *args], stdin=child,
                               stdout=child, stderr=child, env=environ)  # fmt: skip
    os.close(child)
    drawn = bytearray()
    while True:
        try:
            piece = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not piece:
            break
        drawn += piece
    os.close(main)
    return process.wait(timeout=60), drawn.decode("utf-8", "replace")


def test_generate_on_a_terminal_redraws_both_arms_until_done(
    server: ServerProcess, dictionary_id: str, client_module: Client
) -> None:
    code, drawn = in_terminal(server, *_generate_args(dictionary_id))
    assert code == 0, drawn
    assert "Traceback" not in drawn
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    # A live view: the frame is redrawn (cursor moved up over it) and ends with both arms done.
    assert re.search(r"\x1b\[\d*A", drawn), drawn[:2000]
    assert "perturbed (done)" in plain and "control (done)" in plain
    assert "\x1b[38;" in drawn or "\x1b[2m" in drawn  # styled: the prompt is dimmed


def test_analysis_compare_and_layers(server: ServerProcess, registered: dict[str, Any],
                                     client_module: Client) -> None:  # fmt: skip
    texts = ["The cat sat on the mat.", "Chunks are recurring patterns."]
    text_args = [a for t in texts for a in ("--text", t)]
    lines = ok_json(server, "analysis", "compare", "--a", f"{MODEL}:blocks.0.resid_post",
                    "--b", f"{MODEL}:{HOOK}", *text_args)  # fmt: skip
    [result] = [m["result"] for m in lines if "result" in m]
    [measure] = result["results"]
    corpus = dpb.Corpus(texts=dpb.TextList(texts=texts))

    def states(hook: str) -> apb.StateSet:
        return apb.StateSet(captured=apb.CapturedStates(model={"name": MODEL}, hook_point=hook,
                                                        inputs=corpus))  # fmt: skip

    truth = client_module.compare_representations(apb.CompareRepresentationsRequest(
        a=states("blocks.0.resid_post"), b=states(HOOK), measures=[apb.MEASURE_LINEAR_CKA]
    ))  # fmt: skip
    assert measure["measure"] == "MEASURE_LINEAR_CKA"
    assert measure["value"] == pytest.approx(truth.results[0].value, rel=1e-9)

    lines = ok_json(server, "analysis", "layers", "--model", MODEL, "--grouping", "contiguous",
                    *text_args)  # fmt: skip
    [layers] = [m["result"] for m in lines if "result" in m]
    names = [h.name for h in client_module.list_hook_points(MODEL)]
    assert layers["layers"] == names and len(layers["matrix"]) == len(names) ** 2
    assert sorted(i for g in layers["groups"] for i in g["layers"]) == list(range(len(names)))
    table = run(server, "analysis", "layers", "--model", MODEL, *text_args)
    assert table.returncode == 0 and "group 0" in table.stdout


def test_invalid_argument_prints_the_field_violation(
    server: ServerProcess, registered: dict[str, Any]
) -> None:
    done = run(server, "detect", "--model", MODEL, "--dictionary", "nonsense", "x")
    assert done.returncode == 13, done.stderr  # 10 + INVALID_ARGUMENT (3)
    assert done.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "  config.dictionary_ids[0]: " in done.stderr or "dictionary_ids[0]" in done.stderr


def test_bad_token_is_unauthenticated(server: ServerProcess) -> None:
    done = run(server, "models", "list", env={"CHUNKSCOPE_TOKEN": "not-a-key"})
    assert done.returncode == 26, done.stderr  # 10 + UNAUTHENTICATED (16)
    assert done.stderr.startswith("error: UNAUTHENTICATED: ") and "not-a-key" not in done.stderr
    flag = run(server, "models", "list", "--token", "still-not-a-key")
    assert flag.returncode == 26 and "still-not-a-key" not in flag.stderr


def test_nothing_listening_is_unavailable_with_a_hint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    done = run(None, "models", "list", "--address", f"127.0.0.1:{port}", "--timeout", "10")
    assert done.returncode == 24, done.stderr  # 10 + UNAVAILABLE (14)
    assert done.stderr.startswith("error: UNAVAILABLE: ")
    assert f"hint: is a chunkscope server listening at 127.0.0.1:{port}?" in done.stderr


def test_usage_errors_exit_2_without_a_call() -> None:
    done = run(None, "generate", "--model", "m", "--prompt", "p", "--activate", "no-entry")
    assert done.returncode == 2 and "DICTIONARY:ENTRY" in done.stderr
    done = run(None, "models", "list", "--output", "yaml")
    assert done.returncode == 2 and "yaml" in done.stderr
