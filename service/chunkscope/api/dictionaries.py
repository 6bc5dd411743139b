"""DictionaryService: proto <-> domain for extraction jobs and stored dictionaries."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import numpy as np
from google.protobuf import timestamp_pb2

from chunkscope.api import tensors
from chunkscope.api.paging import next_token, page_window
from chunkscope.config import Settings
from chunkscope.corpus import Inputs, read_corpus_file
from chunkscope.engine import methods
from chunkscope.engine.chunks import DetectorCache
from chunkscope.engine.extraction import ExtractionSpec, Extractor, Progress
from chunkscope.engine.methods import discrete_sequence_chunking as dsc_method
from chunkscope.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    Slots,
)
from chunkscope.store.dictionaries import ArchiveSpool, DictionaryStore
from chunkscope_client.v1 import common_pb2, dictionaries_pb2, dictionaries_pb2_grpc

pb = dictionaries_pb2
EXPORT_CHUNK = 1 << 20
SPOOL_OFFLOAD = 256 << 10  # pieces at least this large are hashed and written on a worker thread

_PHASES = {
    "capture": pb.EXTRACTION_PHASE_CAPTURE,
    "fit": pb.EXTRACTION_PHASE_FIT,
    "store": pb.EXTRACTION_PHASE_STORE,
}


# ----- request -> domain ------------------------------------------------------------------------


def _inputs(corpus: pb.Corpus, field: str, settings: Settings) -> Inputs:
    kind = corpus.WhichOneof("source")
    if kind == "texts":
        return Inputs(texts=tuple(corpus.texts.texts))
    if kind == "sequences":
        return Inputs(sequences=tuple(tuple(s.symbols) for s in corpus.sequences.sequences))
    if kind == "path":
        return Inputs(texts=read_corpus_file(corpus.path, settings.corpora, f"{field}.path"))
    raise InvalidArgument.field(field, "required: texts, path or sequences")


def _method(request: pb.ExtractDictionaryRequest) -> tuple[str, Any]:
    """The method named by the request's oneof and its typed parameters (its module parses them)."""
    kind = request.WhichOneof("method")
    if kind is None or kind not in methods.METHODS:
        raise InvalidArgument.field("method", f"required: one of {', '.join(methods.METHODS)}")
    return kind, methods.get(kind).from_request(getattr(request, kind))


def spec_from_request(request: pb.ExtractDictionaryRequest, settings: Settings) -> ExtractionSpec:
    if not request.HasField("model") or not request.model.name:
        raise InvalidArgument.field("model.name", "required: a registered model's name")
    method, method_spec = _method(request)
    context = {
        pb.CONTEXT_POLICY_UNSPECIFIED: "whole_text",
        pb.CONTEXT_POLICY_WHOLE_TEXT: "whole_text",
        pb.CONTEXT_POLICY_SENTENCE: "sentence",
    }.get(request.context)
    if context is None:
        raise InvalidArgument.field("context", "unknown ContextPolicy value")
    return ExtractionSpec(
        model=request.model.name,
        content_hash=request.model.content_hash,
        hook_points=tuple(request.hook_points),
        corpus=_inputs(request.corpus, "corpus", settings),
        heldout=_inputs(request.heldout, "heldout", settings)
        if request.HasField("heldout")
        else None,
        context=context,
        batch_size=request.batch_size or 8,
        max_tokens=request.max_tokens,
        description=request.description,
        method=method,
        method_spec=method_spec,
    )


# ----- domain -> reply --------------------------------------------------------------------------


def _scores(d: dict[str, Any] | None) -> pb.DetectionScores | None:
    return None if d is None else pb.DetectionScores(**d)


def _sweep(points: list[dict[str, Any]]) -> list[pb.PaSweepPoint]:
    return [pb.PaSweepPoint(**p) for p in points]


def infeasible_to_proto(cell: dict[str, Any]) -> pb.InfeasibleCell:
    return pb.InfeasibleCell(**{**cell, "sweep": _sweep(cell["sweep"])})


def recommended_to_proto(item: dict[str, Any]) -> pb.RecommendedHookPoint:
    return pb.RecommendedHookPoint(
        **{
            **item,
            "out_of_sample": _scores(item.get("out_of_sample")),
            "cross_validated": _scores(item.get("cross_validated")),
        }
    )


def _prototype(method: str, entry: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, Any]:
    found = methods.get(method).prototype(entry, t)
    return {name: tensors.to_proto(value) for name, value in found.items()}


def entry_to_proto(
    method: str, entry: dict[str, Any], t: dict[str, np.ndarray] | None
) -> pb.ChunkEntry:
    message = pb.ChunkEntry(
        id=entry["id"],
        label=entry["label"],
        tau=entry.get("tau", 0.0),
        threshold=entry.get("threshold", 0.0),
        n_neurons=entry.get("n_neurons", 0),
        count=entry.get("count", 0),
        train=_scores(entry.get("train")),
        heldout=_scores(entry.get("heldout")),
        auc=entry.get("auc", 0.0),
        sweep=_sweep(entry.get("sweep", [])),
        out_of_sample=_scores(entry.get("out_of_sample")),
        cross_validated=_scores(entry.get("cross_validated")),
        cv_folds=entry.get("cv_folds", 0),
        states=entry.get("states", []),
        examples=[pb.ChunkExample(**e) for e in entry.get("examples", [])],
        **(_prototype(method, entry, t) if t is not None else {}),
    )
    return message


def dsc_tables_to_proto(manifest: dict[str, Any], t: dict[str, np.ndarray]) -> pb.DscTables:
    found = dsc_method.tables(manifest, t)
    return pb.DscTables(
        neurons=[pb.DscNeuron(centroids=row) for row in found.neurons],
        states=[
            pb.DscState(bins=bins, count=count)
            for bins, count in zip(found.state_bins, found.state_counts, strict=True)
        ],
        null_state=found.null_state,
        decode_accuracy=found.decode_accuracy,
        decode_train_steps=found.decode_train_steps,
        decode_test_steps=found.decode_test_steps,
    )


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def dictionary_to_proto(
    manifest: dict[str, Any],
    t: dict[str, np.ndarray] | None = None,
    *,
    entries: bool = True,
    tables: dict[str, np.ndarray] | None = None,
) -> pb.Dictionary:
    """`t`: the tensors for the entries' prototypes; `tables`: the tensors for DscTables (DSC)."""
    dsc_tables = (
        dsc_tables_to_proto(manifest, tables)
        if tables is not None and manifest["method"] == dsc_method.NAME
        else None
    )
    return pb.Dictionary(
        dsc_tables=dsc_tables,
        id=manifest["id"],
        model=common_pb2.ModelRef(
            name=manifest["model"]["name"], content_hash=manifest["model"]["content_hash"]
        ),
        hook_point=manifest["hook_point"],
        hidden_size=manifest["hidden_size"],
        dtype=manifest["dtype"],
        method=methods.get(manifest["method"]).proto,
        parameters_json=json.dumps(manifest["parameters"], sort_keys=True),
        corpus_fingerprint=manifest["corpus"]["fingerprint"],
        n_inputs=manifest["corpus"]["n_inputs"],
        n_tokens=manifest["corpus"]["n_tokens"],
        created_at=_timestamp(datetime.fromisoformat(manifest["created_at"])),
        chunkscope_version=manifest["chunkscope_version"],
        description=manifest["description"],
        n_entries=len(manifest["entries"]),
        stats=manifest["stats"],
        entries=[entry_to_proto(manifest["method"], e, t) for e in manifest["entries"]]
        if entries
        else [],
        infeasible_cells=[infeasible_to_proto(c) for c in manifest.get("infeasible_cells", [])]
        if entries
        else [],
        recommended=[recommended_to_proto(r) for r in manifest.get("recommended", [])]
        if entries
        else [],
    )


def _progress(p: Progress) -> pb.ExtractDictionaryResponse:
    return pb.ExtractDictionaryResponse(
        progress=pb.ExtractionProgress(
            phase=_PHASES[p.phase], hook_point=p.hook_point, items_done=p.done,
            items_total=p.total, tokens_processed=p.tokens, elapsed_seconds=p.elapsed,
            estimated_seconds_left=p.eta,
        )
    )  # fmt: skip


# ----- the servicer -----------------------------------------------------------------------------


class DictionaryServicer(dictionaries_pb2_grpc.DictionaryServiceServicer):
    def __init__(
        self,
        extractor: Extractor,
        store: DictionaryStore,
        detectors: DetectorCache,
        settings: Settings,
    ) -> None:
        self.extractor = extractor
        self.store = store
        self.detectors = detectors
        self.settings = settings
        self.jobs = Slots(
            settings.max_extraction_jobs, "extraction jobs", "--max-extraction-jobs",
            "TOO_MANY_EXTRACTIONS",
        )  # fmt: skip
        self.imports = Slots(
            settings.max_concurrent_imports, "imports", "--max-concurrent-imports",
            "TOO_MANY_IMPORTS",
        )  # fmt: skip

    async def ExtractDictionary(
        self, request: pb.ExtractDictionaryRequest, context: Any
    ) -> AsyncIterator[pb.ExtractDictionaryResponse]:
        # A corpus file may be 256 MiB to read and parse: not on the event loop.
        spec = await asyncio.to_thread(spec_from_request, request, self.settings)
        with self.jobs.take():
            async for event in self._extract(spec):
                yield event

    async def _extract(self, spec: ExtractionSpec) -> AsyncIterator[pb.ExtractDictionaryResponse]:
        started = asyncio.get_running_loop().time()
        async for event in self.extractor.run(spec):
            if isinstance(event, Progress):
                yield _progress(event)
            else:
                elapsed = asyncio.get_running_loop().time() - started
                yield pb.ExtractDictionaryResponse(
                    result=pb.ExtractionResult(
                        dictionaries=[dictionary_to_proto(m) for m in event],
                        elapsed_seconds=elapsed,
                        infeasible_cells=[
                            infeasible_to_proto(c)
                            for m in event
                            for c in m.get("infeasible_cells", [])
                        ],
                        recommended=[
                            recommended_to_proto(r)
                            for r in (event[0] if event else {}).get("recommended", [])
                        ],
                    )
                )

    async def GetDictionary(
        self, request: pb.GetDictionaryRequest, context: Any
    ) -> pb.GetDictionaryResponse:
        manifest, t = await asyncio.to_thread(self.store.load, request.id)
        return pb.GetDictionaryResponse(
            dictionary=dictionary_to_proto(
                manifest,
                t if request.include_prototypes else None,
                tables=t if request.include_tables else None,
            )
        )

    async def ListDictionaries(
        self, request: pb.ListDictionariesRequest, context: Any
    ) -> pb.ListDictionariesResponse:
        offset, size = page_window(request.page)
        records, total = self.store.list_page(request.model, offset, size)
        token = next_token(offset, size, total)
        manifests = await asyncio.to_thread(
            lambda: [self.store.read_manifest(r.id) for r in records]
        )
        return pb.ListDictionariesResponse(
            dictionaries=[dictionary_to_proto(m, entries=False) for m in manifests],
            page=common_pb2.PageResponse(next_page_token=token, total_size=total),
        )

    async def DeleteDictionary(
        self, request: pb.DeleteDictionaryRequest, context: Any
    ) -> pb.DeleteDictionaryResponse:
        manifest = await asyncio.to_thread(self.store.delete, request.id)
        self.detectors.forget(request.id)
        return pb.DeleteDictionaryResponse(dictionary=dictionary_to_proto(manifest, entries=False))

    async def ExportDictionary(
        self, request: pb.ExportDictionaryRequest, context: Any
    ) -> AsyncIterator[pb.ExportDictionaryResponse]:
        archive = await asyncio.to_thread(self.store.export_archive, request.id)
        digest = "sha256:" + (await asyncio.to_thread(hashlib.sha256, archive)).hexdigest()
        for start in range(0, len(archive), EXPORT_CHUNK):
            first = start == 0
            yield pb.ExportDictionaryResponse(
                data=archive[start : start + EXPORT_CHUNK],
                total_bytes=len(archive) if first else 0,
                sha256=digest if first else "",
            )

    async def ImportDictionary(
        self, request_iterator: AsyncIterator[pb.ImportDictionaryRequest], context: Any
    ) -> pb.ImportDictionaryResponse:
        with self.imports.take():
            spool = self.store.spool()
            try:
                expected = await self._receive(request_iterator, spool)
                manifest = await asyncio.to_thread(self._import, spool, expected)
            finally:
                spool.discard()  # the stored copy is its own; the upload goes in any case
        return pb.ImportDictionaryResponse(dictionary=dictionary_to_proto(manifest, entries=False))

    async def _receive(
        self, request_iterator: AsyncIterator[pb.ImportDictionaryRequest], spool: ArchiveSpool
    ) -> str:
        """Write the pieces to the spool under the size limit; returns the sha256 sent."""
        limit, expected = self.settings.max_import_bytes, ""
        async for piece in request_iterator:
            expected = expected or piece.sha256
            if spool.size + len(piece.data) > limit:
                raise ResourceExhausted(
                    f"the archive is larger than {limit} bytes (--max-import-bytes)",
                    reason="ARCHIVE_TOO_LARGE",
                    metadata={"limit": str(limit)},
                )
            if len(piece.data) >= SPOOL_OFFLOAD:
                await asyncio.to_thread(spool.write, piece.data)
            else:  # small pieces: a thread hop would cost more than the write
                spool.write(piece.data)
        return expected

    def _import(self, spool: ArchiveSpool, expected: str) -> dict[str, Any]:
        """Check the received bytes, then validate and store them (on a worker thread)."""
        spool.close()
        if not spool.size:
            raise InvalidArgument.field("data", "empty: stream the bytes of an exported archive")
        if expected and expected != spool.sha256:
            raise InvalidArgument.field(
                "sha256", "the archive's bytes do not match the sha256 sent with them"
            )
        try:
            return self.store.import_archive(spool.path, check=_servable)
        except FailedPrecondition as exc:
            if exc.reason != "INVALID_DICTIONARY":
                raise  # e.g. bound to other weights than the registered model's
            # The archive is the caller's argument: a faulty one is INVALID_ARGUMENT on `data`
            # (a stored dictionary that fails the same checks stays FAILED_PRECONDITION).
            raise InvalidArgument(
                FieldViolation("data", exc.message), reason="INVALID_DICTIONARY"
            ) from None


def _servable(manifest: dict[str, Any], t: dict[str, np.ndarray]) -> None:
    """Refuse a manifest that validates but that no reply could carry (it would be stored for good
    and fail every GetDictionary): a value out of its proto field's range, an unknown key in an
    entry, an entry's states outside the stored ones."""
    try:
        dictionary_to_proto(manifest, t)
    except (ValueError, TypeError, OverflowError, KeyError, IndexError, AttributeError) as exc:
        raise FailedPrecondition(
            f"manifest cannot be served: {type(exc).__name__}: {str(exc)[:200]}",
            reason="INVALID_DICTIONARY",
        ) from None
