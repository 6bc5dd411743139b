"""`chunkscope models ...` and `chunkscope dictionaries ...`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

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
    read_texts,
)
from chunkscope_client.v1 import common_pb2, models_pb2
from chunkscope_client.v1 import dictionaries_pb2 as dpb

# ----- models ---------------------------------------------------------------------------------


def _model_row(model: models_pb2.Model) -> list[str]:
    return [
        model.name,
        enum_name(models_pb2.ModelState, model.state, "MODEL_STATE_"),
        enum_name(models_pb2.ModelFormat, model.format, "MODEL_FORMAT_"),
        model.architecture,
        str(model.num_blocks),
        str(model.hidden_size),
        model.device,
        model.dtype,
        model.content_hash[:19],
    ]


_MODEL_COLUMNS = ["name", "state", "format", "architecture", "blocks", "hidden", "device",
                  "dtype", "content hash"]  # fmt: skip


def _show_model(model: models_pb2.Model) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows: dict[str, Any] = {
        "name": model.name,
        "source path": model.source_path,
        "format": enum_name(models_pb2.ModelFormat, model.format, "MODEL_FORMAT_"),
        "state": enum_name(models_pb2.ModelState, model.state, "MODEL_STATE_"),
        "state reason": model.state_reason,
        "content hash": model.content_hash,
        "architecture": model.architecture,
        "blocks": model.num_blocks,
        "hidden size": model.hidden_size,
        "vocabulary": model.vocab_size,
        "parameters": f"{model.parameter_count:,}",
        "device": model.device,
        "dtype": model.dtype,
        "registered": model.registered_at.ToJsonString() if model.HasField("registered_at") else "",
        "load seconds": f"{model.load_seconds:.2f}",
    }
    if model.symbols:
        rows["symbols"] = " ".join(model.symbols)
    for key, value in rows.items():
        if value not in ("", None):
            table.add_row(key, str(value))
    out.print(table)


@click.group(help="Register, list, show and unregister models; list their hook points.")
def models() -> None:
    pass


@models.command("register", help="Register a model from a path under a server model root.")
@click.argument("name")
@click.argument("source_path")
@click.option("--format", "format_", default="", help="hf_safetensors, gguf or recurrent "
              "(default: detected from the path).")  # fmt: skip
@click.option("--dtype", default="", help="float32, float16 or bfloat16 (default: the server's).")
@click.option("--no-wait", is_flag=True, help="Return at once instead of when the model is READY.")
@connection_options
def models_register(
    name: str, source_path: str, format_: str, dtype: str, no_wait: bool, conn: Connection
) -> None:
    request = models_pb2.RegisterModelRequest(
        name=name, source_path=source_path, dtype=dtype, wait=not no_wait
    )
    if format_:
        request.format = enum_value(models_pb2.ModelFormat, format_, "MODEL_FORMAT_", "--format")
    with calls(conn) as c:
        timeout = max(conn.timeout, 300.0) if not no_wait else conn.timeout
        model = c.models.RegisterModel(request, timeout=timeout).model
    print_json(model) if conn.json else _show_model(model)


@models.command("list", help="List the registered models.")
@connection_options
def models_list(conn: Connection) -> None:
    with calls(conn) as c:
        found = list(c.list_models())
    if conn.json:
        for model in found:
            print_json(model)
        return
    table = Table(*_MODEL_COLUMNS)
    table.columns[0].no_wrap = True
    for model in found:
        table.add_row(*_model_row(model))
    out.print(table)


@models.command("show", help="Show one registered model.")
@click.argument("name")
@connection_options
def models_show(name: str, conn: Connection) -> None:
    with calls(conn) as c:
        model = c.get_model(name)
    print_json(model) if conn.json else _show_model(model)


@models.command("hook-points", help="List a model's hook points (where states are read).")
@click.argument("name")
@click.option("--content-hash", default="", help="Fail unless the model has this content hash.")
@connection_options
def models_hook_points(name: str, content_hash: str, conn: Connection) -> None:
    with calls(conn) as c:
        points = c.list_hook_points(name, content_hash=content_hash)
    if conn.json:
        for point in points:
            print_json(point)
        return
    table = Table("name", "shape", "block", "description")
    for point in points:
        shape = "×".join(str(n) for n in point.shape)
        table.add_row(point.name, shape, str(point.block), point.description)
    out.print(table)


@models.command("unregister", help="Unregister a model (its dictionaries stay stored).")
@click.argument("name")
@connection_options
def models_unregister(name: str, conn: Connection) -> None:
    with calls(conn) as c:
        model = c.unregister_model(name)
    print_json(model) if conn.json else out.print(f"unregistered {model.name}", markup=False)


# ----- dictionaries ---------------------------------------------------------------------------

_METHODS = {
    "population-averaging": ("population_averaging", dpb.PopulationAveragingParams),
    "discrete-sequence-chunking": (
        "discrete_sequence_chunking",
        dpb.DiscreteSequenceChunkingParams,
    ),
    "cosine-dictionary": ("cosine_dictionary", dpb.CosineDictionaryParams),
    "density-chunks": ("density_chunks", dpb.DensityChunksParams),
}


def corpus_of(
    texts: tuple[str, ...], texts_file: Path | None, symbols_file: Path | None,
    server_path: str | None, option: str = "--texts-file", texts_key: str = "texts",
) -> dpb.Corpus | None:  # fmt: skip
    """A corpus from --text, --texts-file (one text a line), --symbols-file (one sequence a
    line: whitespace-separated symbols, or one symbol a character) or a server-side path."""
    given = [bool(texts or texts_file), symbols_file is not None, bool(server_path)]
    if sum(given) > 1:
        raise click.UsageError("give texts, a symbols file or a server corpus path, not several")
    if symbols_file is not None:
        lines = read_lines(symbols_file)
        seqs = [dpb.SymbolSequence(symbols=ln.split() if " " in ln.strip() else list(ln.strip()))
                for ln in lines]  # fmt: skip
        return dpb.Corpus(sequences=dpb.SequenceList(sequences=seqs))
    if server_path:
        return dpb.Corpus(path=server_path)
    items = list(texts) + (read_texts(texts_file, texts_key, option) if texts_file else [])
    return dpb.Corpus(texts=dpb.TextList(texts=items)) if items else None


# `--preset`: the named PA settings a request starts from (PaPreset; fields in --params override).
_PA_PRESETS = {
    "recommended": dpb.PA_PRESET_RECOMMENDED,
    "authors": dpb.PA_PRESET_AUTHORS,
}


def _method_params(
    method: str, concepts: str, seed: int | None, params: str, preset: str | None = None
) -> tuple[str, Any]:
    field, message_type = _METHODS[method]
    message = message_type()
    if params:
        try:
            json_format.Parse(params, message)
        except json_format.ParseError as error:
            raise click.BadParameter(str(error), param_hint="--params") from None
    if concepts:
        if method != "population-averaging":
            raise click.UsageError("--concepts is for --method population-averaging")
        for concept in concepts.split(","):
            name, _, words = concept.strip().partition("=")
            message.concepts.add(concept=name, words=[w for w in words.split("+") if w])
    if seed is not None:
        message.seed = seed
    if preset is not None:
        if method != "population-averaging":
            raise click.UsageError("--preset is for --method population-averaging")
        message.preset = _PA_PRESETS[preset]
    return field, message


class _ExtractionBar:
    """A live bar per phase and hook point: the phase's name, items done of total, tokens."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[tokens]} tokens"),
            TimeElapsedColumn(),
            console=err,
        )
        self.tasks: dict[tuple[int, str], TaskID] = {}

    def update(self, p: dpb.ExtractionProgress) -> None:
        key = (p.phase, p.hook_point)
        phase = enum_name(dpb.ExtractionPhase, p.phase, "EXTRACTION_PHASE_")
        if key not in self.tasks:
            label = f"{phase} {p.hook_point}".strip()
            self.tasks[key] = self.progress.add_task(label, total=p.items_total or None, tokens=0)
        self.progress.update(self.tasks[key], completed=p.items_done,
                             total=p.items_total or None, tokens=p.tokens_processed)  # fmt: skip


def _dictionaries_table(found: list[dpb.Dictionary]) -> Table:
    table = Table("model", "hook point", "method", "entries", "tokens", "created", "description")
    table.add_column("id", no_wrap=True)  # ids are copied from here: never broken
    for d in found:
        table.add_row(
            d.model.name, d.hook_point, enum_name(dpb.ChunkMethod, d.method, "CHUNK_METHOD_"),
            str(d.n_entries), str(d.n_tokens),
            d.created_at.ToJsonString()[:19] if d.HasField("created_at") else "", d.description,
            d.id,
        )  # fmt: skip
    return table


def _show_dictionary(d: dpb.Dictionary, *, recommended: bool = True) -> None:
    out.print(_dictionaries_table([d]))
    if d.stats:
        out.print("stats: " + ", ".join(f"{k}={v:g}" for k, v in sorted(d.stats.items())),
                  markup=False)  # fmt: skip
    table = Table("entry", "label", "count", "neurons", "threshold", "train tpr", "train fpr",
                  "cv tpr", "heldout tpr", "heldout fpr", "auc")  # fmt: skip
    for e in d.entries:
        held = (
            [f"{e.heldout.tpr:.3f}", f"{e.heldout.fpr:.3f}"] if e.HasField("heldout") else ["", ""]
        )
        train = [f"{e.train.tpr:.3f}", f"{e.train.fpr:.3f}"]
        cv = f"{e.cross_validated.tpr:.3f}" if e.HasField("cross_validated") else ""
        table.add_row(str(e.id), e.label, str(e.count), str(e.n_neurons), f"{e.threshold:.4g}",
                      *train, cv, *held, f"{e.auc:.3f}")  # fmt: skip
    out.print(table)
    for cell in d.infeasible_cells:
        out.print(f"no entry for {cell.concept!r}: {cell.message}", markup=False)
    for r in d.recommended if recommended else []:
        out.print(f"recommended for {r.concept!r}: {r.hook_point} ({r.dictionary_id} entry "
                  f"{r.entry_id}, honest tpr {r.honest_tpr:.3f})", markup=False)  # fmt: skip


@click.group(help="Extract, list, show, export, import and delete chunk dictionaries.")
def dictionaries() -> None:
    pass


@dictionaries.command("extract", help="Extract a dictionary per hook point from a corpus, with a "
                      "live progress bar (table) or progress lines (json).")  # fmt: skip
@click.option("--model", required=True, help="Registered model name.")
@click.option("--hook-point", "hook_points", multiple=True, required=True,
              help="Hook point (repeat for several).")  # fmt: skip
@click.option("--method", type=click.Choice(list(_METHODS)), default="population-averaging",
              show_default=True)  # fmt: skip
@click.option("--concepts", default="", help="Population averaging: concepts with commas; "
              "CONCEPT=word1+word2 names its words (default: the concept itself).")  # fmt: skip
@click.option("--text", "texts", multiple=True, help="A corpus text (repeatable).")
@click.option("--texts-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
              path_type=Path), help="Corpus texts, one a line ('-' for stdin); a .json file: a "
              "list of strings, or an object's list under --texts-key.")  # fmt: skip
@click.option("--texts-key", default="texts", show_default=True,
              help="The key of a JSON object --texts-file's list.")  # fmt: skip
@click.option(
    "--symbols-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Symbol sequences for a recurrent model, one a line.",
)
@click.option("--corpus-path", help="A corpus file under the server's corpus root.")
@click.option(
    "--heldout-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Held-out texts to score the entries on: one a line, or .json as --texts-file.",
)
@click.option("--heldout-key", default="heldout", show_default=True,
              help="The key of a JSON object --heldout-file's list.")  # fmt: skip
@click.option("--params", default="", help="The method's parameters as a JSON object "
              '(proto field names), e.g. \'{"n_samples": 10}\'.')  # fmt: skip
@click.option("--seed", type=int, help="The method's seed.")
@click.option("--preset", type=click.Choice(list(_PA_PRESETS)), help="Population averaging: the "
              "named settings to start from (default: the server's, recommended; authors: the "
              "paper's exact settings). Fields in --params override it, e.g. "
              '\'{"radius_scale": 1.0, "sample_all": false}\'.')  # fmt: skip
@click.option("--context", type=click.Choice(["whole-text", "sentence"]), help="Context policy.")
@click.option("--batch-size", type=int, default=0)
@click.option("--max-tokens", type=int, default=0)
@click.option("--description", default="")
@click.option("--quiet", "-q", is_flag=True, help="Print only the new dictionaries' ids, one a "
              "line (for scripts: ID=$(chunkscope dictionaries extract ... -q)).")  # fmt: skip
@connection_options
def dictionaries_extract(
    model: str, hook_points: tuple[str, ...], method: str, concepts: str, texts: tuple[str, ...],
    texts_file: Path | None, texts_key: str, symbols_file: Path | None, corpus_path: str | None,
    heldout_file: Path | None, heldout_key: str, params: str, seed: int | None,
    preset: str | None, context: str | None, batch_size: int, max_tokens: int, description: str,
    quiet: bool, conn: Connection,
) -> None:  # fmt: skip
    corpus = corpus_of(texts, texts_file, symbols_file, corpus_path, texts_key=texts_key)
    if corpus is None:
        raise click.UsageError(
            "give a corpus: --text, --texts-file, --symbols-file or --corpus-path"
        )
    field, method_params = _method_params(method, concepts, seed, params, preset)
    request = dpb.ExtractDictionaryRequest(
        model=common_pb2.ModelRef(name=model), hook_points=list(hook_points), corpus=corpus,
        batch_size=batch_size, max_tokens=max_tokens, description=description,
        **{field: method_params},
    )  # fmt: skip
    if heldout_file is not None:
        request.heldout.texts.texts.extend(read_texts(heldout_file, heldout_key, "--heldout-file"))
    if context:
        request.context = enum_value(dpb.ContextPolicy, context, "CONTEXT_POLICY_", "--context")
    result: dpb.ExtractionResult | None = None
    with calls(conn) as c:
        stream = c.extract_dictionary_stream(request)
        if quiet:
            for message in stream:
                for d in message.result.dictionaries if message.HasField("result") else ():
                    out.print(d.id, markup=False)
            return
        if conn.json:
            for message in stream:
                print_json(message)
            return
        bar = _ExtractionBar()
        with bar.progress:
            for message in stream:
                if message.HasField("progress"):
                    bar.update(message.progress)
                else:
                    result = message.result
    if result is not None:
        out.print(f"extracted {len(result.dictionaries)} dictionar"
                  f"{'y' if len(result.dictionaries) == 1 else 'ies'} in "
                  f"{result.elapsed_seconds:.1f} s", markup=False)  # fmt: skip
        last = len(result.dictionaries) - 1
        for i, d in enumerate(result.dictionaries):
            _show_dictionary(d, recommended=i == last)  # the same list in each: once, at the end


@dictionaries.command("list", help="List stored dictionaries, newest first.")
@click.option("--model", default="", help="Only this model's.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the ids, one a line.")
@connection_options
def dictionaries_list(model: str, quiet: bool, conn: Connection) -> None:
    with calls(conn) as c:
        found = list(c.list_dictionaries(model))
    if quiet:
        for d in found:
            out.print(d.id, markup=False)
        return
    if conn.json:
        for d in found:
            print_json(d)
        return
    out.print(_dictionaries_table(found))


@dictionaries.command("show", help="Show a dictionary and its entries.")
@click.argument("dictionary_id")
@click.option("--prototypes", is_flag=True, help="Include the prototype tensors (json output).")
@connection_options
def dictionaries_show(dictionary_id: str, prototypes: bool, conn: Connection) -> None:
    with calls(conn) as c:
        d = c.get_dictionary(dictionary_id, include_prototypes=prototypes)
    print_json(d) if conn.json else _show_dictionary(d)


@dictionaries.command("export", help="Write a dictionary as a portable archive.")
@click.argument("dictionary_id")
@click.option("--out", "-f", "out_path", required=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Archive file to write.")  # fmt: skip
@connection_options
def dictionaries_export(dictionary_id: str, out_path: Path, conn: Connection) -> None:
    with calls(conn) as c:
        archive = c.export_dictionary(dictionary_id)
    out_path.write_bytes(archive)
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    summary = {"id": dictionary_id, "path": str(out_path), "bytes": len(archive), "sha256": digest}
    if conn.json:
        print_json(summary)
    else:
        out.print(f"wrote {dictionary_id} to {out_path} ({len(archive)} bytes, {digest})",
                  markup=False)  # fmt: skip


@dictionaries.command("import", help="Store an archive made by `dictionaries export`.")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@connection_options
def dictionaries_import(archive: Path, conn: Connection) -> None:
    with calls(conn) as c:
        d = c.import_dictionary(archive.read_bytes())
    print_json(d) if conn.json else _show_dictionary(d)


@dictionaries.command("delete", help="Delete a stored dictionary.")
@click.argument("dictionary_id")
@connection_options
def dictionaries_delete(dictionary_id: str, conn: Connection) -> None:
    with calls(conn) as c:
        d = c.delete_dictionary(dictionary_id)
    print_json(d) if conn.json else out.print(f"deleted {d.id}", markup=False)


__all__ = ["corpus_of", "dictionaries", "json", "models"]
