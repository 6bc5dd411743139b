"""`chunkscope report DICT_ID`: a chunk page, built from the public API and written as one file.

The data comes from GetDictionary (entries, scores, neurons and prototypes), ListDictionaries
(the same extraction at its other hook points) and Detect over a corpus (which contexts fire, at
which tokens, how strongly); `chunkscope.commands.pages` turns it into HTML.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click
import numpy as np

from chunkscope.chunking.labels import word_spans
from chunkscope.commands.common import (
    Connection,
    calls,
    connection_options_long,
    enum_name,
    err,
    out,
    read_texts,
)
from chunkscope.commands.pages import Chunk, Context, Highlight, LayerPoint, Page, Scores, render
from chunkscope.commands.pages import strength as match_strength
from chunkscope_client import Client
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dtp
from chunkscope_client.v1 import dictionaries_pb2 as dpb

_NUMPY = {
    common_pb2.DTYPE_FLOAT32: np.float32,
    common_pb2.DTYPE_FLOAT64: np.float64,
    common_pb2.DTYPE_INT64: np.int64,
    common_pb2.DTYPE_INT32: np.int32,
}
_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers|h)\.(\d+)(?:\.|$)")
# Detect's request limit on inputs; larger corpora go in several calls.
_BATCH = 64


def corpus_texts(values: tuple[str, ...], key: str) -> list[str]:
    """Contexts from --corpus values: a file (see `read_texts`), '-' for stdin lines, or a
    literal text."""
    texts: list[str] = []
    for value in values:
        path = Path(value)
        if value == "-" or path.is_file():
            texts += read_texts(path, key, "--corpus")
        elif value.strip():
            texts.append(value)
    return texts


def _array(tensor: common_pb2.Tensor) -> np.ndarray | None:
    dtype = _NUMPY.get(tensor.dtype)
    if dtype is None or not tensor.data:
        return None
    return np.frombuffer(tensor.data, dtype=dtype).reshape(tuple(tensor.shape))


def _scores(entry: dpb.ChunkEntry, name: str) -> Scores | None:
    if not entry.HasField(name):  # type: ignore[arg-type]
        return None
    s = getattr(entry, name)
    return Scores(s.tpr, s.fpr, int(s.positives), int(s.negatives))


def _concept_words(dictionary: dpb.Dictionary) -> dict[str, list[str]]:
    """PA: each concept's words, as the extraction labelled them (the concept itself if none)."""
    try:
        parameters = json.loads(dictionary.parameters_json or "{}")
    except json.JSONDecodeError:
        return {}
    concepts = parameters.get("concepts", []) if isinstance(parameters, dict) else []
    return {
        c["concept"]: list(c.get("words") or [c["concept"]])
        for c in concepts
        if isinstance(c, dict) and isinstance(c.get("concept"), str)
    }


def _order(hook_point: str, fallback: int) -> int:
    found = _BLOCK.search(hook_point)
    return int(found.group(1)) if found else fallback


def _siblings(client: Client, dictionary: dpb.Dictionary) -> list[dpb.Dictionary]:
    """The dictionaries the same extraction stored at other hook points: same model, method,
    parameters and corpus."""
    same = [
        d
        for d in client.list_dictionaries(model=dictionary.model.name)
        if d.model.content_hash == dictionary.model.content_hash
        and d.method == dictionary.method
        and d.parameters_json == dictionary.parameters_json
        and d.corpus_fingerprint == dictionary.corpus_fingerprint
    ]
    return [client.get_dictionary(d.id) if d.id != dictionary.id else dictionary for d in same]


def _layers(dictionaries: list[dpb.Dictionary]) -> tuple[LayerPoint, ...]:
    return tuple(
        LayerPoint(
            hook_point=d.hook_point,
            order=_order(d.hook_point, i),
            label=e.label or str(e.id),
            dictionary_id=d.id,
            train=_scores(e, "train"),
            heldout=_scores(e, "heldout"),
        )
        for i, d in enumerate(dictionaries)
        for e in d.entries
    )


def _detect_all(
    client: Client, dictionary: dpb.Dictionary, texts: list[str], max_tokens: int
) -> list[dtp.DetectResult]:
    results: list[dtp.DetectResult] = []
    for start in range(0, len(texts), _BATCH):
        request = dtp.DetectRequest(
            config=dtp.DetectionConfig(
                model=common_pb2.ModelRef(
                    name=dictionary.model.name, content_hash=dictionary.model.content_hash
                ),
                dictionary_ids=[dictionary.id],
                positives_only=True,
                max_tokens=max_tokens,
            ),
            inputs=[dtp.DetectInput(text=t) for t in texts[start : start + _BATCH]],
        )
        results += client.detect(request).results
    return results


def build_page(
    client: Client,
    dictionary_id: str,
    texts: list[str],
    corpus_source: str,
    *,
    top: int,
    max_tokens: int,
    layers: bool,
) -> Page:
    """Everything a chunk page shows, fetched through the API."""
    dictionary = client.get_dictionary(dictionary_id, include_prototypes=True)
    if dictionary.method == dpb.CHUNK_METHOD_DISCRETE_SEQUENCE_CHUNKING:
        raise click.UsageError(
            "chunk pages are for text models' dictionaries (PA, cosine, density); "
            "a DSC dictionary's entries are state sequences: use `chunkscope dictionaries show`"
        )
    lower_is_better = dictionary.method != dpb.CHUNK_METHOD_COSINE_DICTIONARY
    results = _detect_all(client, dictionary, texts, max_tokens) if texts else []
    words = _concept_words(dictionary)
    chunks = []
    for entry in dictionary.entries:
        label = entry.label or str(entry.id)
        spans = word_spans(texts, label, words[label]) if label in words else []
        by_text: dict[int, list[tuple[int, int]]] = {}
        for span in spans:
            by_text.setdefault(span.text_index, []).append((span.start, span.end))
        contexts = []
        for index, (text, result) in enumerate(zip(texts, results, strict=True)):
            summary = next(s for s in result.summaries if s.entry_id == entry.id)
            highlights = tuple(
                Highlight(
                    t.char_start,
                    t.char_end,
                    m.score,
                    match_strength(m.score, m.threshold, lower_is_better),
                )
                for t in result.tokens
                for m in t.matches
                if m.entry_id == entry.id and t.char_end > t.char_start
            )
            contexts.append(
                Context(
                    index=index,
                    text=text,
                    fired=summary.fired,
                    best_score=summary.best_score,
                    positive=(index in by_text) if label in words else None,
                    highlights=highlights,
                    words=tuple(by_text.get(index, ())),
                )
            )
        neurons = _array(entry.neurons) if entry.HasField("neurons") else None
        prototype = _array(entry.prototype) if entry.HasField("prototype") else None
        chunks.append(
            Chunk(
                entry_id=entry.id,
                label=label,
                threshold=entry.threshold,
                n_neurons=entry.n_neurons,
                tau=entry.tau,
                train=_scores(entry, "train"),
                heldout=_scores(entry, "heldout"),
                cross_validated=_scores(entry, "cross_validated"),
                neurons=neurons,
                prototype=prototype,
                contexts=tuple(contexts),
            )
        )
    siblings = _siblings(client, dictionary) if layers else [dictionary]
    notes: tuple[str, ...] = ()
    if not texts:
        notes = ("No corpus was given: the contexts are the dictionary's stored examples.",)
    return Page(
        dictionary_id=dictionary.id,
        model=f"{dictionary.model.name} ({dictionary.model.content_hash[:19]})",
        hook_point=dictionary.hook_point,
        method=enum_name(dpb.ChunkMethod, dictionary.method, "CHUNK_METHOD_").replace("_", " "),
        description=dictionary.description,
        created=dictionary.created_at.ToJsonString()[:19].replace("T", " ")
        if dictionary.HasField("created_at")
        else "",
        hidden_size=dictionary.hidden_size,
        n_tokens=int(dictionary.n_tokens),
        lower_is_better=lower_is_better,
        corpus_source=corpus_source,
        chunks=tuple(chunks),
        layers=_layers(sorted(siblings, key=lambda d: _order(d.hook_point, 0))),
        top=top,
        notes=notes,
        recommended=tuple((r.concept, r.hook_point, r.honest_tpr) for r in dictionary.recommended),
    )


@click.command(help="Write a chunk page: one self-contained HTML file with, for each chunk of "
               "the dictionary, its top contexts in the corpus with the matching tokens "
               "highlighted, a histogram of its scores over positive and negative contexts, its "
               "neurons and scores, and its concepts' scores across the extraction's hook "
               "points.")  # fmt: skip
@click.argument("dictionary_id")
@click.option("--corpus", "corpus", multiple=True,
              help="Contexts to scan (repeatable): a file (one context a line; .json: a list of "
              "strings, or an object's list under --corpus-key), '-' for stdin, or a literal "
              "text. Default: the dictionary's stored examples.")  # fmt: skip
@click.option("--corpus-key", default="texts", show_default=True,
              help="The key of a JSON object --corpus file's list of texts.")  # fmt: skip
@click.option("-o", "--out", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True,
              help="The page to write.")  # fmt: skip
@click.option("--top", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Top contexts shown per chunk.")  # fmt: skip
@click.option(
    "--max-tokens",
    type=click.IntRange(min=0),
    default=0,
    help="Truncate each context to this many tokens (0: the server's limit applies).",
)
@click.option(
    "--layers/--no-layers",
    default=True,
    show_default=True,
    help="Look up the same extraction's other hook points for the per-layer figure.",
)
@connection_options_long
def report(
    dictionary_id: str, corpus: tuple[str, ...], corpus_key: str, output_path: Path, top: int,
    max_tokens: int, layers: bool, conn: Connection,
) -> None:  # fmt: skip
    texts = corpus_texts(corpus, corpus_key)
    source = f"{len(texts)} contexts from {', '.join(corpus)}" if corpus else ""
    with calls(conn) as client:
        if not texts:
            stored = client.get_dictionary(dictionary_id)
            texts = list(dict.fromkeys(x.context for e in stored.entries for x in e.examples))
            source = f"the dictionary's {len(texts)} stored example contexts"
        page = build_page(
            client, dictionary_id, texts, source, top=top, max_tokens=max_tokens, layers=layers
        )
    html = render(page)
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        output_path.write_text(html, encoding="utf-8")
    except OSError as error:
        raise click.FileError(str(output_path), hint=error.strerror or str(error)) from None
    if conn.json:
        fired = {c.label: sum(x.fired for x in c.contexts) for c in page.chunks}
        sys.stdout.write(json.dumps({"path": str(output_path), "dictionary_id": page.dictionary_id,
                                     "contexts": len(texts), "fired": fired,
                                     "bytes": len(html.encode())}) + "\n")  # fmt: skip
        return
    out.print(f"wrote {output_path} ({len(html.encode()) // 1024} KiB): {len(page.chunks)} chunks "
              f"over {len(texts)} contexts", markup=False)  # fmt: skip
    if not any(x.fired for c in page.chunks for x in c.contexts):
        err.print("note: no chunk fired in any context of the corpus", markup=False)
