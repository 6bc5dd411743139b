"""Extraction inputs: texts or symbol sequences, inline or from a corpus file under a corpus root.

Corpus files are read only from configured roots (like models): `.txt` holds one text per
non-empty line, `.jsonl` one JSON object per line with a string "text" field. Limits keep a
single request from reading unbounded data into memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from chunkscope.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from chunkscope.paths import path_test, resolve_user_path

MAX_CORPUS_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Inputs:
    """What a model is run on: texts (language models) or symbol sequences (recurrent networks)."""

    texts: tuple[str, ...] = ()
    sequences: tuple[tuple[str, ...], ...] = ()

    @property
    def is_symbolic(self) -> bool:
        return bool(self.sequences)

    def __len__(self) -> int:
        return len(self.sequences) if self.sequences else len(self.texts)

    def fingerprint(self, *extra: str) -> str:
        """sha256 over the inputs and the settings that change what the model sees."""
        digest = hashlib.sha256()
        for part in extra:
            digest.update(part.encode() + b"\0")
        if self.sequences:
            for seq in self.sequences:
                digest.update(b"\x1e".join(s.encode() for s in seq) + b"\x1d")
        else:
            for text in self.texts:
                digest.update(text.encode() + b"\x1d")
        return "sha256:" + digest.hexdigest()


def read_corpus_file(path: str, roots: tuple[Path, ...], field: str) -> tuple[str, ...]:
    """Texts from a .txt or .jsonl file that must resolve inside a corpus root."""
    resolved = resolve_user_path(path, roots, field)
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PermissionDenied(
            f"{field} {path!r} is outside the corpus roots ({', '.join(map(str, roots))}); "
            "put the file under a root or configure --corpus-roots / CHUNKSCOPE_CORPUS_ROOTS",
            reason="OUTSIDE_CORPUS_ROOTS",
        )
    if not path_test(resolved, Path.is_file):
        raise NotFound(
            f"{field} {path!r} does not exist or is not a file", reason="CORPUS_NOT_FOUND"
        )
    size = resolved.stat().st_size
    if size > MAX_CORPUS_BYTES:
        raise InvalidArgument.field(
            field, f"{path!r} is {size} bytes; corpus files are limited to {MAX_CORPUS_BYTES}"
        )
    suffix = resolved.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise InvalidArgument.field(field, f"{path!r}: corpus files must be .txt or .jsonl")
    try:
        lines = resolved.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidArgument.field(field, f"{path!r} is not UTF-8 text: {exc}") from None
    if suffix == ".txt":
        return tuple(line for line in lines if line.strip())
    texts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgument.field(
                field, f"{path!r} line {number}: not JSON ({exc})"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InvalidArgument.field(
                field, f'{path!r} line {number}: needs an object with a string "text" field'
            )
        texts.append(record["text"])
    return tuple(texts)


def check_inputs(inputs: Inputs, field: str, *, symbols: tuple[str, ...]) -> None:
    """Inputs must be non-empty and of the kind the model takes (symbols must be known)."""
    if len(inputs) == 0:
        raise InvalidArgument.field(field, "empty: give at least one text or sequence")
    if symbols and not inputs.is_symbolic:
        raise InvalidArgument.field(
            field, "this is a recurrent model: give symbol sequences, not texts"
        )
    if not symbols and inputs.is_symbolic:
        raise InvalidArgument.field(field, "this is a language model: give texts, not sequences")
    known = set(symbols)
    violations = []
    for i, seq in enumerate(inputs.sequences):
        if not seq:
            violations.append(FieldViolation(f"{field}.sequences[{i}]", "empty sequence"))
            continue
        unknown = sorted({s for s in seq if s not in known})
        if unknown:
            violations.append(FieldViolation(
                f"{field}.sequences[{i}]",
                f"unknown symbols {unknown[:5]}; the model's symbols are {list(symbols)}",
            ))  # fmt: skip
        if len(violations) >= 10:
            break
    for i, text in enumerate(inputs.texts):
        if not text.strip():
            violations.append(FieldViolation(f"{field}.texts[{i}]", "empty text"))
            if len(violations) >= 10:
                break
    if violations:
        raise InvalidArgument(violations)
