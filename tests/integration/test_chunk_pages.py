"""Chunk pages: `chunkscope report` against a live server, the page opened in headless Chromium
and checked through its DOM against what the Python client's Detect says; the pure rendering
checked for escaping and strength in the same browser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chunkscope.commands.pages import Chunk, Context, Highlight, Page, Scores, render, strength
from chunkscope_client import Client
from chunkscope_client.v1 import detection_pb2 as dtp
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from support import ServerProcess
from support import run_cli as run

MODEL = "page-lm"
HOOKS = ["blocks.0.resid_post", "blocks.1.resid_post"]
TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HELDOUT = ["The cat watched the cake.", "A cat and a cake sat on the table today."]
CORPUS = [
    "The cat sat on the mat.",
    "My aunt baked a cake for the cat.",
    "Nobody came to the meeting on Monday.",
    "On day 3 the cat slept near the window while the cake cooled.",
    "The dog barked at the postman.",
    "A cake, a cat and a hat.",
]
WORDS = {"cat": re.compile(r"\bcat\b", re.I), "cake": re.compile(r"\bcake\b", re.I)}


@pytest.fixture(scope="module")
def lm(server: ServerProcess) -> Iterator[Client]:
    with Client.connect(server.address, timeout=120) as c:
        c.register_model(MODEL, "tiny-llama", wait=True)
        yield c
        c.unregister_model(MODEL)


@pytest.fixture(scope="module")
def dictionaries(lm: Client) -> list[dpb.Dictionary]:
    request = dpb.ExtractDictionaryRequest(
        model={"name": MODEL},
        hook_points=HOOKS,
        corpus=dpb.Corpus(texts=dpb.TextList(texts=TRAIN)),
        heldout=dpb.Corpus(texts=dpb.TextList(texts=HELDOUT)),
        population_averaging=dpb.PopulationAveragingParams(
            concepts=[dpb.ConceptWords(concept="cat"), dpb.ConceptWords(concept="cake")],
            n_samples=10,
            seed=0,
        ),
    )
    found = lm.extract_dictionary(request, timeout=300)
    assert [d.hook_point for d in found] == HOOKS
    return found


@pytest.fixture(scope="module")
def page(
    server: ServerProcess, dictionaries: list[dpb.Dictionary], tmp_path_factory: Any
) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("page")
    (folder / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    out = folder / "page.html"
    done = run(server, "report", dictionaries[1].id, "--corpus", str(folder / "corpus.txt"),
               "-o", str(out), "--output", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def truth(lm: Client, dictionary: dpb.Dictionary) -> list[dtp.DetectResult]:
    """Detect's own answer over the corpus: what the page must show."""
    request = dtp.DetectRequest(
        config=dtp.DetectionConfig(
            model={"name": MODEL}, dictionary_ids=[dictionary.id], positives_only=True
        ),
        inputs=[dtp.DetectInput(text=t) for t in CORPUS],
    )
    return list(lm.detect(request).results)


def test_report_page_shows_what_detect_says(
    lm: Client,
    dictionaries: list[dpb.Dictionary],
    page: tuple[Path, dict[str, Any]],
    browser: Any,
    tmp_path: Path,
) -> None:
    path, summary = page
    dictionary = dictionaries[1]
    results = truth(lm, dictionary)
    html = path.read_text()
    # Self-contained: nothing to fetch, nothing to run.
    assert "<script" not in html and "<link" not in html and "http://" not in html

    driver = browser.driver
    driver.get(path.as_uri())
    assert driver.title == f"chunkscope: {dictionary.id}"
    fired_by_label: dict[str, int] = {}
    for entry in dictionary.entries:
        sums = [next(s for s in r.summaries if s.entry_id == entry.id) for r in results]
        fired = [i for i, s in enumerate(sums) if s.fired]
        fired_by_label[entry.label] = len(fired)
        positive = [bool(WORDS[entry.label].search(t)) for t in CORPUS]
        pos_fired = sum(positive[i] for i in fired)
        neg_fired = len(fired) - pos_fired

        row = driver.execute_script(
            "const a = [...document.querySelectorAll('#summary a')]"
            ".find(x => x.textContent === arguments[0]);"
            "return [...a.closest('tr').cells].map(c => c.textContent.trim());",
            entry.label,
        )
        assert row[6] == f"{pos_fired}/{sum(positive)}"
        assert row[7] == f"{neg_fired}/{len(CORPUS) - sum(positive)}"
        cv = entry.cross_validated
        assert row[4] == f"{cv.tpr:.2f} / {cv.fpr:.4f}" and entry.HasField("cross_validated")

        section = f"section[data-label='{entry.label}']"
        shown = driver.execute_script(
            f'return [...document.querySelectorAll("{section} li[data-context]")]'
            ".map(li => Number(li.dataset.context));"
        )
        expected = sorted(fired, key=lambda i: sums[i].best_score)[:8]
        assert shown == expected
        if expected:  # the strongest context: its marks are exactly Detect's matching tokens
            first = expected[0]
            marks = driver.execute_script(
                f"return [...document.querySelectorAll(\"{section} li[data-context='{first}'] "
                'mark")].map(m => m.textContent);'
            )
            tokens = [
                CORPUS[first][t.char_start : t.char_end]
                for t in results[first].tokens
                if any(m.entry_id == entry.id for m in t.matches)
            ]
            assert "".join(marks) == "".join(tokens) and marks
        loaded = driver.execute_script(
            f'return [...document.querySelectorAll("{section} img")]'
            ".map(i => [i.complete && i.naturalWidth > 0, i.getAttribute('src').slice(0, 5)]);"
        )
        assert loaded and all(ok and src == "data:" for ok, src in loaded), loaded
    assert summary["fired"] == fired_by_label
    assert {r.concept for r in dictionary.recommended} == {"cat", "cake"}
    recommended = driver.execute_script("return document.getElementById('recommended').textContent")
    for r in dictionary.recommended:
        assert f"{r.concept} {r.hook_point}" in " ".join(recommended.split())
    # Two hook points of one extraction: the per-layer figure is there and drawn.
    assert driver.execute_script(
        "const i = document.getElementById('layers'); return i && i.naturalWidth > 0;"
    )
    shot = tmp_path / "chunk-page.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_report_refuses_clearly(server: ServerProcess, tmp_path: Path) -> None:
    missing = run(server, "report", "dict-000000000000", "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 15, missing.stderr  # 10 + NOT_FOUND
    assert "NOT_FOUND" in missing.stderr and not (tmp_path / "x.html").exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"paragraphs": ["a cat"]}))
    done = run(server, "report", "dict-000000000000", "--corpus", str(bad))
    assert done.returncode == 2 and "--corpus" in done.stderr and "'texts'" in done.stderr, (
        done.stderr
    )


def test_rendering_escapes_and_grades_in_a_browser(browser: Any, tmp_path: Path) -> None:
    hostile = "<script>window.pwned = 1</script> the <b>cat</b> & co"
    start = hostile.index("cat")
    lower = Scores(1.0, 0.0, 3, 30)
    chunk = Chunk(
        entry_id=0, label="<i>cat</i>", threshold=2.0, n_neurons=3, tau=0.5, train=lower,
        heldout=None, cross_validated=None, neurons=np.array([4, 1, 7]),
        prototype=np.array([0.5, -1.0, 2.0]),
        contexts=(
            Context(0, hostile, True, 0.5, True,
                    (Highlight(start, start + 3, 0.5, strength(0.5, 2.0, True)),),
                    ((start, start + 3),)),
            Context(1, "plain", False, 9.0, False),
        ),
    )  # fmt: skip
    page = Page(
        dictionary_id="dict-test", model="m", hook_point="blocks.0.resid_post",
        method="population averaging", description="<img src=x onerror=alert(1)>", created="",
        hidden_size=8, n_tokens=10, lower_is_better=True, corpus_source="two texts",
        chunks=(chunk,),
    )  # fmt: skip
    path = tmp_path / "page.html"
    path.write_text(render(page))
    driver = browser.driver
    driver.get(path.as_uri())
    assert driver.execute_script("return window.pwned === undefined")
    assert driver.execute_script("return document.scripts.length") == 0
    item = driver.execute_script("return document.querySelector('li[data-context]').textContent")
    assert item == hostile
    mark = driver.execute_script(
        "const m = document.querySelector('mark'); return [m.textContent, m.style.background];"
    )
    # 0.5 of a threshold of 2: a quarter of the way in (strength 0.75 -> alpha 0.2 + 0.8 * 0.75)
    assert mark[0] == "cat" and mark[1] == "rgba(240, 140, 0, 0.8)"
    assert driver.execute_script("return document.querySelector('.neurons').textContent") == (
        "neurons: 1, 4, 7"
    )
    assert driver.find_element("css selector", "section h2").text.startswith("<i>cat</i>")


def test_strength() -> None:
    assert strength(0.0, 2.0, True) == 1.0 and strength(2.0, 2.0, True) == 0.0
    assert strength(1.0, 4.0, True) == 0.75
    assert strength(0.9, 0.5, False) == pytest.approx(0.8)
    assert strength(3.0, 2.0, True) == 0.0  # outside the threshold: never negative
