"""`chunkscope detect`, `chunkscope generate` and `chunkscope analysis ...`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.columns import Columns
from rich.live import Live
from rich.panel import Panel
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from chunkscope.commands.common import (
    Connection,
    calls,
    connection_options,
    enum_name,
    enum_value,
    err,
    out,
    print_json,
    read_lines,
)
from chunkscope.commands.resources import corpus_of
from chunkscope_client.v1 import analysis_pb2 as apb
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dtp
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from chunkscope_client.v1 import perturbation_pb2 as ppb

_STYLES = ["bold black on yellow", "bold white on blue", "bold black on green",
           "bold white on magenta", "bold black on cyan", "bold white on red"]  # fmt: skip


def _symbols(value: str) -> dpb.SymbolSequence:
    return dpb.SymbolSequence(symbols=value.split() if " " in value.strip() else list(value))


def _input(value: str, symbols: bool) -> dtp.DetectInput:
    return dtp.DetectInput(symbols=_symbols(value)) if symbols else dtp.DetectInput(text=value)


# ----- detect -----------------------------------------------------------------------------------


def _highlighted(source: str, result: dtp.DetectResult, styles: dict[str, str]) -> Text:
    """The input with every firing token in its concept's colour, the label after it."""
    text = Text()
    at = 0
    for token in result.tokens:
        if not token.matches:
            continue
        start, end = token.char_start, token.char_end
        if source and start >= at and end > start:
            text.append(source[at:start])
            piece, at = source[start:end], end
        else:  # symbol sequences: no characters to point into
            piece = token.token
        labels = sorted({m.label or str(m.entry_id) for m in token.matches})
        text.append(piece, style=styles.setdefault(labels[0], _STYLES[len(styles) % len(_STYLES)]))
        text.append(f"[{','.join(labels)}]", style="dim")
    text.append(source[at:])
    return text


@click.command(help="Detect chunks in texts: firing tokens highlighted with their concept "
               "(table), their character spans (--spans), or the reply (json).")  # fmt: skip
@click.argument("texts", nargs=-1)
@click.option("--model", required=True, help="Registered model name.")
@click.option("--dictionary", "dictionary_ids", multiple=True, required=True,
              help="Dictionary id (repeat for several).")  # fmt: skip
@click.option("--label", "labels", multiple=True, help="Only these entries' labels.")
@click.option("--texts-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
              path_type=Path), help="Inputs, one a line ('-' for stdin).")  # fmt: skip
@click.option("--symbols", is_flag=True, help="Inputs are symbol sequences (recurrent models): "
              "whitespace-separated, or one symbol a character.")  # fmt: skip
@click.option("--spans", is_flag=True, help="Print one line per match: input, start, end, "
              "label, score, token.")  # fmt: skip
@click.option("--positives-only", is_flag=True)
@click.option("--max-tokens", type=int, default=0)
@connection_options
def detect(
    texts: tuple[str, ...], model: str, dictionary_ids: tuple[str, ...], labels: tuple[str, ...],
    texts_file: Path | None, symbols: bool, spans: bool, positives_only: bool, max_tokens: int,
    conn: Connection,
) -> None:  # fmt: skip
    items = list(texts) + (read_lines(texts_file) if texts_file else [])
    if not items:
        raise click.UsageError("give the inputs as arguments or with --texts-file")
    request = dtp.DetectRequest(
        config=dtp.DetectionConfig(
            model=common_pb2.ModelRef(name=model), dictionary_ids=list(dictionary_ids),
            labels=list(labels), positives_only=positives_only, max_tokens=max_tokens,
        ),
        inputs=[_input(item, symbols) for item in items],
    )  # fmt: skip
    with calls(conn) as c:
        reply = c.detect(request)
    if conn.json:
        print_json(reply)
        return
    if spans:
        for index, result in enumerate(reply.results):
            for token in result.tokens:
                for m in token.matches:
                    # tab-separated for cut/awk: plain text, no console (it expands tabs)
                    sys.stdout.write(f"{index}\t{token.char_start}\t{token.char_end}\t"
                                     f"{m.label or m.entry_id}\t{m.score:.4f}\t"
                                     f"{token.token!r}\n")  # fmt: skip
        return
    styles: dict[str, str] = {}
    for index, (item, result) in enumerate(zip(items, reply.results, strict=True)):
        source = "" if symbols else item
        body = _highlighted(source, result, styles)
        if symbols and not body.plain:
            body = Text(" ".join(_symbols(item).symbols))
        out.print(Text(f"[{index}] ", style="bold") + body)
        fired = [s for s in result.summaries if s.fired]
        summary = ", ".join(f"{s.label or s.entry_id} ×{s.count} (best {s.best_score:.3f})"
                            for s in fired) or "nothing fired"  # fmt: skip
        out.print(f"    {result.n_tokens} tokens; {summary}", markup=False)


# ----- generate ---------------------------------------------------------------------------------


def _chunk(value: str, option: str) -> tuple[ppb.ChunkRef, float | None]:
    """DICTIONARY:ENTRY[:ALPHA]."""
    parts = value.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        alpha = float(parts[2]) if len(parts) == 3 else None
        return ppb.ChunkRef(dictionary_id=parts[0], entry_id=int(parts[1])), alpha
    except ValueError:
        raise click.BadParameter(f"{value!r} is not DICTIONARY:ENTRY[:ALPHA]",
                                 param_hint=option) from None  # fmt: skip


def _positions(value: str) -> ppb.Positions:
    if value == "all":
        return ppb.Positions(all_prompt=True, generated=True)
    if value == "prompt":
        return ppb.Positions(all_prompt=True)
    if value == "generated":
        return ppb.Positions(generated=True)
    try:
        if value.startswith("tail:"):  # tail:COUNT[:SKIP_LAST] of the (last) chat message
            count, _, skip = value.removeprefix("tail:").partition(":")
            tail = ppb.MessageTokens(message_index=-1, count=int(count), skip_last=int(skip or 0))
            return ppb.Positions(message_tail=tail)
        return ppb.Positions(indices=[int(i) for i in value.split(",")])
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not all, prompt, generated, tail:COUNT[:SKIP] or positions with commas",
            param_hint="--positions",
        ) from None


class _Arms:
    """The perturbed and the control continuation, side by side, growing token by token."""

    def __init__(self, prompt: str, control: bool) -> None:
        self.prompt = prompt
        self.texts = {ppb.ARM_PERTURBED: Text(), ppb.ARM_CONTROL: Text()}
        self.arms = [ppb.ARM_PERTURBED, ppb.ARM_CONTROL] if control else [ppb.ARM_PERTURBED]
        self.done: set[int] = set()

    def add(self, message: ppb.GenerateResponse) -> None:
        arm = message.arm or ppb.ARM_PERTURBED
        if message.done:
            self.done.add(arm)
            return
        style = "bold underline" if message.matches else ""
        self.texts[arm].append(message.token, style=style)
        for event in message.rule_events:
            self.texts[arm].append(f"[rule {event.rule_index}: {event.action}]", style="dim")

    def __rich__(self) -> Columns:
        panels = []
        for arm in self.arms:
            name = enum_name(ppb.Arm, arm, "ARM_")
            title = f"{name}{' (done)' if arm in self.done else ''}"
            body = Text(self.prompt, style="dim") + self.texts[arm]
            panels.append(Panel(body, title=title, width=max(30, out.width // len(self.arms) - 1)))
        return Columns(panels)


@click.command(help="Generate from a prompt with interventions; tokens stream as they come, "
               "the control arm (--control, same seed, no interventions) beside the perturbed "
               "one. JSON output: one line per streamed message.")  # fmt: skip
@click.option("--model", required=True, help="Registered model name.")
@click.option("--prompt", required=True, help="The prompt (a symbol sequence with --symbols).")
@click.option("--symbols", is_flag=True, help="The prompt is a symbol sequence.")
@click.option("--chat", is_flag=True, help="The prompt is a user message: the server applies "
              "the model's own chat template.")  # fmt: skip
@click.option("--activate", multiple=True, metavar="D:ENTRY", help="Activate a chunk.")
@click.option("--inhibit", multiple=True, metavar="D:ENTRY", help="Inhibit a chunk.")
@click.option("--add", multiple=True, metavar="D:ENTRY:ALPHA", help="Add alpha × a prototype.")
@click.option("--project-out", multiple=True, metavar="D:ENTRY", help="Project a chunk out.")
@click.option("--alpha", type=float, default=0.0, help="Strength where none is given.")
@click.option(
    "--positions",
    default="all",
    show_default=True,
    help="all, prompt, generated, prompt positions with commas (-1 = last), or with --chat "
    "tail:COUNT[:SKIP]: the message's last COUNT tokens, leaving its last SKIP out.",
)
@click.option("--hook-point", default="", help="Apply at this hook point instead of the "
              "dictionary's own.")  # fmt: skip
@click.option("--control", is_flag=True, help="Also generate without interventions.")
@click.option("--detect", "detect_ids", multiple=True, help="Detect this dictionary's chunks "
              "on the generated tokens (repeatable).")  # fmt: skip
@click.option("--max-new-tokens", type=int, default=20, show_default=True)
@click.option("--temperature", type=float, default=0.0, help="0: greedy.")
@click.option("--top-p", type=float, default=0.0)
@click.option("--top-k", type=int, default=0)
@click.option("--seed", type=int, default=0)
@click.option("--stop-at-eos", is_flag=True)
@connection_options
def generate(
    model: str, prompt: str, symbols: bool, chat: bool, activate: tuple[str, ...],
    inhibit: tuple[str, ...],
    add: tuple[str, ...], project_out: tuple[str, ...], alpha: float, positions: str,
    hook_point: str, control: bool, detect_ids: tuple[str, ...], max_new_tokens: int,
    temperature: float, top_p: float, top_k: int, seed: int, stop_at_eos: bool, conn: Connection,
) -> None:  # fmt: skip
    where = _positions(positions)
    interventions = []
    for values, mode, option in (
        (activate, ppb.INTERVENTION_MODE_ACTIVATE, "--activate"),
        (inhibit, ppb.INTERVENTION_MODE_INHIBIT, "--inhibit"),
        (add, ppb.INTERVENTION_MODE_ADD, "--add"),
        (project_out, ppb.INTERVENTION_MODE_PROJECT_OUT, "--project-out"),
    ):
        for value in values:
            ref, strength = _chunk(value, option)
            interventions.append(ppb.Intervention(
                chunk=ref, mode=mode, alpha=alpha if strength is None else strength,
                positions=where, hook_point=hook_point,
                allow_other_hook_point=bool(hook_point)))  # fmt: skip
    if chat and symbols:
        raise click.BadParameter("a chat message is a text, not symbols", param_hint="--chat")
    request = ppb.GenerateRequest(
        model=common_pb2.ModelRef(name=model),
        **({"messages": [ppb.ChatPromptMessage(role="user", content=prompt)]} if chat else
           {"prompt": _input(prompt, symbols)}),
        interventions=interventions, control=control, detect_dictionary_ids=list(detect_ids),
        sampling=ppb.SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                    top_p=top_p, top_k=top_k, seed=seed,
                                    stop_at_eos=stop_at_eos),
    )  # fmt: skip
    with calls(conn) as c:
        stream = c.generate(request)
        if conn.json:
            for message in stream:
                print_json(message)
            return
        arms = _Arms(prompt, control)
        with Live(arms, console=out, refresh_per_second=8) as live:
            for message in stream:
                arms.add(message)
                live.refresh()


# ----- analysis ---------------------------------------------------------------------------------


@click.group(help="Compare representations and find groups of similar layers.")
def analysis() -> None:
    pass


def _states(ref: str, corpus: dpb.Corpus, max_tokens: int, pooling: Any) -> apb.StateSet:
    model, sep, hook = ref.partition(":")
    if not sep or not model or not hook:
        raise click.BadParameter(f"{ref!r} is not MODEL:HOOK_POINT", param_hint="--a/--b")
    return apb.StateSet(captured=apb.CapturedStates(
        model=common_pb2.ModelRef(name=model), hook_point=hook, inputs=corpus,
        max_tokens=max_tokens, pooling=pooling))  # fmt: skip


def _stream(conn: Connection, stream: object) -> object | None:
    """Print a progress-then-result stream: JSON lines, or a live bar; return the result."""
    result = None
    if conn.json:
        for message in stream:  # type: ignore[attr-defined]
            print_json(message)
        return None
    with Progress(console=err, transient=False) as progress:
        tasks: dict[int, object] = {}
        for message in stream:  # type: ignore[attr-defined]
            if message.HasField("progress"):
                p = message.progress
                name = enum_name(apb.AnalysisPhase, p.phase, "ANALYSIS_PHASE_")
                if p.phase not in tasks:
                    tasks[p.phase] = progress.add_task(name, total=p.items_total or None)
                progress.update(tasks[p.phase], completed=p.items_done,  # type: ignore[arg-type]
                                total=p.items_total or None,
                                description=f"{name} {p.detail}".strip())  # fmt: skip
            else:
                result = message.result
    return result


_corpus_options = [
    click.option("--text", "texts", multiple=True, help="An input text (repeatable)."),
    click.option(
        "--texts-file",
        type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
        help="Input texts, one a line.",
    ),
    click.option(
        "--symbols-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Symbol sequences (recurrent models), one a line.",
    ),
    click.option("--max-tokens", type=int, default=0),
    click.option(
        "--pooling", default="all-tokens", show_default=True, help="all-tokens, last-token or mean."
    ),
]


def _with_corpus(command):  # type: ignore[no-untyped-def]
    for option in reversed(_corpus_options):
        command = option(command)
    return command


def _corpus(
    texts: tuple[str, ...], texts_file: Path | None, symbols_file: Path | None
) -> dpb.Corpus:
    corpus = corpus_of(texts, texts_file, symbols_file, None)
    if corpus is None:
        raise click.UsageError("give inputs: --text, --texts-file or --symbols-file")
    return corpus


@analysis.command("compare", help="Compare the states of two models or hook points on the "
                  "same inputs with one or more measures.")  # fmt: skip
@click.option("--a", "a_ref", required=True, metavar="MODEL:HOOK_POINT")
@click.option("--b", "b_ref", required=True, metavar="MODEL:HOOK_POINT")
@click.option(
    "--measure",
    "measures",
    multiple=True,
    default=["linear-cka"],
    show_default=True,
    help="linear-cka, procrustes, gromov-wasserstein, dsa, dsa-eigenvalues.",
)
@_with_corpus
@connection_options
def analysis_compare(
    a_ref: str, b_ref: str, measures: tuple[str, ...], texts: tuple[str, ...],
    texts_file: Path | None, symbols_file: Path | None, max_tokens: int, pooling: str,
    conn: Connection,
) -> None:  # fmt: skip
    corpus = _corpus(texts, texts_file, symbols_file)
    pool = enum_value(apb.Pooling, pooling, "POOLING_", "--pooling")
    request = apb.CompareRepresentationsRequest(
        a=_states(a_ref, corpus, max_tokens, pool), b=_states(b_ref, corpus, max_tokens, pool),
        measures=[enum_value(apb.Measure, m, "MEASURE_", "--measure") for m in measures],
    )  # fmt: skip
    with calls(conn) as c:
        result = _stream(conn, c.compare_representations_stream(request))
    if not isinstance(result, apb.CompareRepresentationsResult):
        return
    table = Table("measure", "value", "samples", "seconds", "definition")
    for r in result.results:
        table.add_row(enum_name(apb.Measure, r.measure, "MEASURE_"), f"{r.value:.6g}",
                      f"{r.samples_used}/{r.samples_total}", f"{r.compute_seconds:.2f}",
                      r.definition)  # fmt: skip
    out.print(table)


@analysis.command("layers", help="Layer-by-layer similarity of one model, with groups of "
                  "similar layers.")  # fmt: skip
@click.option("--model", required=True)
@click.option("--hook-point", "hook_points", multiple=True, help="Hook points (default: all).")
@click.option("--measure", default="linear-cka", show_default=True)
@click.option("--grouping", default="", help="average-linkage or contiguous.")
@click.option("--groups", type=int, default=0, help="Number of groups (default: chosen).")
@click.option(
    "--heatmap",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the matrix as a PNG heat map here.",
)
@_with_corpus
@connection_options
def analysis_layers(
    model: str, hook_points: tuple[str, ...], measure: str, grouping: str, groups: int,
    heatmap: Path | None, texts: tuple[str, ...], texts_file: Path | None,
    symbols_file: Path | None, max_tokens: int, pooling: str, conn: Connection,
) -> None:  # fmt: skip
    request = apb.LayerSimilarityRequest(
        model=apb.ModelLayers(
            model=common_pb2.ModelRef(name=model), hook_points=list(hook_points),
            inputs=_corpus(texts, texts_file, symbols_file), max_tokens=max_tokens,
            pooling=enum_value(apb.Pooling, pooling, "POOLING_", "--pooling")),
        measure=enum_value(apb.Measure, measure, "MEASURE_", "--measure"),
        heatmap_png=heatmap is not None,
    )  # fmt: skip
    if grouping or groups:
        request.grouping.n_groups = groups
        if grouping:
            request.grouping.method = enum_value(apb.GroupingMethod, grouping, "GROUPING_METHOD_",
                                                 "--grouping")  # fmt: skip
    if conn.json and heatmap is not None:
        raise click.UsageError("--heatmap is for table output (json carries heatmap_png)")
    with calls(conn) as c:
        result = _stream(conn, c.layer_similarity_stream(request))
    if not isinstance(result, apb.LayerSimilarityResult):
        return
    if heatmap is not None:
        heatmap.write_bytes(result.heatmap_png)
    n = len(result.layers)
    table = Table("", *[str(i) for i in range(n)], title=result.definition or None)
    for i, name in enumerate(result.layers):
        cells = []
        for j in range(n):
            v = result.matrix[i * n + j]
            shade = int(min(max(v, 0.0), 1.0) * 255)
            cells.append(Text(f"{v:.2f}", style=f"on rgb({shade // 3},{shade // 3},{shade})"))
        table.add_row(f"{i} {name}", *cells)
    out.print(table)
    for k, group in enumerate(result.groups):
        names = ", ".join(result.layers[i] for i in group.layers)
        out.print(f"group {k}: {names} (mean within {group.mean_within:.3f})", markup=False)
    if result.grouping_description:
        out.print(result.grouping_description, markup=False)
