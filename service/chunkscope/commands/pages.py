"""Chunk pages: one self-contained HTML file per dictionary, from data the public API returned.

`render(page)` is a pure function of a `Page`: figures are drawn with matplotlib's object API
(no pyplot, no global backend) as SVG and embedded as `data:` URIs; the HTML comes from the Jinja2
template page.html.j2 with autoescaping on, so a corpus text such as "<script>" is shown, never
run. Opening the page needs no network and no JavaScript.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from importlib.resources import files
from itertools import pairwise
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scores:
    tpr: float
    fpr: float
    positives: int
    negatives: int


@dataclass(frozen=True)
class Highlight:
    """A token where the chunk matched: characters [start, end) of the context."""

    start: int
    end: int
    score: float
    strength: float  # 0 (at the threshold) .. 1 (the strongest possible match)


@dataclass(frozen=True)
class Context:
    index: int
    text: str
    fired: bool
    best_score: float  # the best match score over the context's tokens
    positive: bool | None  # contains one of the concept's words; None without labels
    highlights: tuple[Highlight, ...] = ()
    words: tuple[tuple[int, int], ...] = ()  # the concept's words in the text (labels)


@dataclass(frozen=True)
class Chunk:
    entry_id: int
    label: str
    threshold: float
    n_neurons: int
    tau: float
    train: Scores | None
    heldout: Scores | None
    cross_validated: Scores | None  # PA: k-fold, the fit scored on occurrences it did not see
    neurons: np.ndarray | None  # indices of the neurons the entry reads (PA), or None
    prototype: np.ndarray | None  # the entry's vector, on `neurons` or on all of them
    contexts: tuple[Context, ...]  # every context of the corpus, in corpus order


@dataclass(frozen=True)
class LayerPoint:
    """One concept's stored scores at one hook point of the same extraction."""

    hook_point: str
    order: int  # the block number, for the x axis
    label: str
    dictionary_id: str
    train: Scores | None
    heldout: Scores | None


@dataclass(frozen=True)
class Page:
    dictionary_id: str
    model: str
    hook_point: str
    method: str
    description: str
    created: str
    hidden_size: int
    n_tokens: int
    lower_is_better: bool
    corpus_source: str
    chunks: tuple[Chunk, ...]
    layers: tuple[LayerPoint, ...] = ()
    top: int = 8
    notes: tuple[str, ...] = field(default_factory=tuple)
    # PA: per concept, the hook point its honest scores recommend and that honest TPR
    recommended: tuple[tuple[str, str, float], ...] = ()


def strength(score: float, threshold: float, lower_is_better: bool) -> float:
    """How far inside its threshold a match is: 0 at the threshold, 1 at a perfect match."""
    if lower_is_better:
        return 1.0 if threshold <= 0 else min(1.0, max(0.0, 1.0 - score / threshold))
    return 1.0 if threshold >= 1 else min(1.0, max(0.0, (score - threshold) / (1.0 - threshold)))


def top_contexts(chunk: Chunk, n: int, lower_is_better: bool) -> list[Context]:
    """The contexts where the chunk fired, strongest best match first (at most n)."""
    fired = [c for c in chunk.contexts if c.fired]
    fired.sort(key=lambda c: c.best_score if lower_is_better else -c.best_score)
    return fired[:n]


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue().encode()).decode()


def _figure(width: float, height: float) -> Any:
    from matplotlib import rcParams
    from matplotlib.figure import Figure

    rcParams["svg.hashsalt"] = "chunkscope"  # the same page twice gives the same bytes
    rcParams["svg.fonttype"] = "none"  # text stays text: small files, selectable labels
    return Figure(figsize=(width, height), layout="constrained")


def histogram(chunk: Chunk, lower_is_better: bool) -> str:
    """Best match score per context, positives and negatives apart, the threshold marked."""
    figure = _figure(5.2, 2.4)
    axes = figure.add_subplot()
    scores = np.array([c.best_score for c in chunk.contexts], dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    log = lower_is_better and finite.size > 0 and bool((finite > 0).all())
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        if chunk.threshold > 0 and log:
            low, high = min(low, chunk.threshold), max(high, chunk.threshold)
        if log:
            bins = np.geomspace(low, high * 1.0001 if high > low else low * 2, 30)
        else:
            bins = np.linspace(low, high if high > low else low + 1, 30)
        groups = [("positive contexts", True, "#d9480f"), ("negative contexts", False, "#1c7ed6")]
        labelled = any(c.positive is not None for c in chunk.contexts)
        if labelled:
            for name, wanted, colour in groups:
                values = [c.best_score for c in chunk.contexts if c.positive is wanted]
                if values:
                    axes.hist(values, bins=bins, alpha=0.6, color=colour, label=name)
        else:
            axes.hist(finite, bins=bins, color="#495057", label="contexts")
        if log:
            axes.set_xscale("log")
    if chunk.threshold > 0:
        axes.axvline(chunk.threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    axes.set_xlabel(
        "best score per context (lower = closer match)"
        if lower_is_better
        else "best score per context (higher = closer match)"
    )
    axes.set_ylabel("contexts")
    axes.legend(fontsize=7, frameon=False)
    return _svg(figure)


def neuron_figure(chunk: Chunk, hidden_size: int) -> str | None:
    """The entry's vector over the neurons it reads (all of them when it reads every neuron)."""
    if chunk.prototype is None or chunk.prototype.ndim != 1:
        return None
    values = chunk.prototype.astype(np.float64)
    if chunk.neurons is not None and chunk.neurons.size == values.size:
        index = chunk.neurons.astype(np.int64)
    else:
        index = np.arange(values.size)
    figure = _figure(5.2, 1.9)
    axes = figure.add_subplot()
    axes.vlines(index, 0, values, linewidth=0.6, color="#5f3dc4")
    axes.set_xlim(-1, max(hidden_size, int(index.max()) + 1 if index.size else 1))
    axes.set_xlabel(f"neuron ({index.size} of {hidden_size})")
    axes.set_ylabel("value")
    return _svg(figure)


def layer_figure(points: tuple[LayerPoint, ...]) -> str | None:
    """TPR and FPR per concept along the hook points of one extraction (held-out when stored)."""
    orders = sorted({p.order for p in points})
    if len(orders) < 2:
        return None
    figure = _figure(7.0, 3.0)
    tpr_axes, fpr_axes = figure.subplots(1, 2)
    for label in sorted({p.label for p in points}):
        mine = sorted((p for p in points if p.label == label), key=lambda p: p.order)
        x = [p.order for p in mine]
        scores = [p.heldout or p.train for p in mine]
        tpr = [s.tpr if s else math.nan for s in scores]
        fpr = [s.fpr if s else math.nan for s in scores]
        (line,) = tpr_axes.plot(x, tpr, marker="o", markersize=3, label=label)
        fpr_axes.plot(x, fpr, marker="o", markersize=3, color=line.get_color())
    held = all(p.heldout is not None for p in points)
    which = "held-out" if held else "training"
    tpr_axes.set_title(f"{which} TPR", fontsize=9)
    fpr_axes.set_title(f"{which} FPR", fontsize=9)
    for axes in (tpr_axes, fpr_axes):
        axes.set_xlabel("block")
    tpr_axes.set_ylim(-0.02, 1.02)
    tpr_axes.legend(fontsize=7, frameon=False)
    return _svg(figure)


def marked(context: Context) -> list[tuple[str, float | None, float | None, bool]]:
    """The context cut into pieces: (text, strength or None, score or None, inside a word)."""
    cuts = {0, len(context.text)}
    for h in context.highlights:
        cuts.update((h.start, h.end))
    for start, end in context.words:
        cuts.update((start, end))
    edges = sorted(c for c in cuts if 0 <= c <= len(context.text))
    pieces = []
    for start, end in pairwise(edges):
        hit = next((h for h in context.highlights if h.start <= start and end <= h.end), None)
        word = any(s <= start and end <= e for s, e in context.words)
        pieces.append(
            (
                context.text[start:end],
                hit.strength if hit else None,
                hit.score if hit else None,
                word,
            )
        )
    return pieces


def summary(chunk: Chunk) -> tuple[str, str]:
    """Contexts of the corpus where the chunk fired: among positives, among negatives."""
    pos = [c for c in chunk.contexts if c.positive is True]
    neg = [c for c in chunk.contexts if c.positive is False]
    if not pos and not neg:
        fired = sum(c.fired for c in chunk.contexts)
        return f"{fired}/{len(chunk.contexts)}", ""
    return (
        f"{sum(c.fired for c in pos)}/{len(pos)}",
        f"{sum(c.fired for c in neg)}/{len(neg)}",
    )


def render(page: Page) -> str:
    """The page's HTML: one file, figures embedded, every text escaped."""
    from jinja2 import Environment

    source = (files("chunkscope.commands") / "page.html.j2").read_text(encoding="utf-8")
    environment = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(source)
    return template.render(
        page=page,
        summary=summary,
        marked=marked,
        top_contexts=lambda c: top_contexts(c, page.top, page.lower_is_better),
        histogram=lambda c: histogram(c, page.lower_is_better),
        neuron_figure=lambda c: neuron_figure(c, page.hidden_size),
        neuron_list=lambda c: ", ".join(str(int(i)) for i in np.sort(c.neurons)),
        layers=layer_figure(page.layers),
    )
