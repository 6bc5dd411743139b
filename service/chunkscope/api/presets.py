"""Intervention presets: named, versioned lists of interventions, and their expansion.

A preset is stored as policies are (store/policies.py, kind PRESETS): every PutPreset a new
version, tombstones for deletions, the body the validated InterventionPreset as JSON. GuardService
manages them (api/guard.py validates a preset when it is put); `Presets.expand` turns a request's
`presets` ("name" or "name@version") into the interventions they hold, for Perturb, Generate and
the HTTP front's `chunkscope.presets` alike: one path, so a preset means the same everywhere.
Expanded interventions are checked again when applied (against the request's model and prompt),
as inline ones are.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import json_format, timestamp_pb2

from chunkscope.errors import (
    ChunkscopeError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    check,
)
from chunkscope.store.policies import PolicyRecord, PolicyStore
from chunkscope_client.v1 import guard_pb2
from chunkscope_client.v1 import perturbation_pb2 as pb

MAX_PRESETS = 16  # named by one request
_REF = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63})(?:@([0-9]{1,18}))?$")
REF_FIX = (
    "give 'name' (the latest version) or 'name@version', the name 1-64 characters of a-z, 0-9, "
    "'.', '_', '-'"
)
_CACHED = 256  # parsed preset versions kept


@dataclass(frozen=True)
class Applied:
    """One preset a request named: the version used and its interventions."""

    name: str
    version: int
    interventions: tuple[pb.Intervention, ...]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version,
                "interventions": len(self.interventions)}  # fmt: skip


def parse_ref(ref: str, field: str) -> tuple[str, int]:
    """("name", version or 0 for the latest) of a "name" or "name@version" reference."""
    found = _REF.match(ref)
    if found is None or found.group(2) == "0":
        raise InvalidArgument.field(field, f"{ref[:80]!r} is not a preset reference: {REF_FIX}")
    return found.group(1), int(found.group(2) or 0)


Versioned = TypeVar("Versioned", guard_pb2.Policy, guard_pb2.InterventionPreset)


def stored_to_proto(record: PolicyRecord, message: Versioned, kind: str) -> Versioned:
    """A stored version of a policy or preset (`kind`) as the API shows it, parsed into
    `message`; a body this server cannot read is refused."""
    try:
        json_format.Parse(record.body, message)
    except (json_format.ParseError, ValueError, RecursionError) as exc:
        raise FailedPrecondition(
            f"stored {kind} {record.name!r} version {record.version} is unreadable "
            f"({str(exc)[:200]}); put a new version",
            reason=f"INVALID_{kind.upper()}",
            metadata={kind: record.name, "version": str(record.version)},
        ) from None
    message.name, message.version = record.name, record.version
    message.author_key_id = record.author
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(record.created_at)
    message.create_time.CopyFrom(created)
    return message


def to_proto(record: PolicyRecord) -> guard_pb2.InterventionPreset:
    """A stored preset version as the API shows it."""
    return stored_to_proto(record, guard_pb2.InterventionPreset(), "preset")


class Presets:
    """The preset store with a cache of parsed versions ((name, version) never changes)."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self._parsed: OrderedDict[tuple[str, int], guard_pb2.InterventionPreset] = OrderedDict()

    async def read(self, name: str, version: int) -> guard_pb2.InterventionPreset:
        record = await asyncio.to_thread(self.store.get, name, version)
        key = (record.name, record.version)
        preset = self._parsed.get(key)
        if preset is None:
            preset = to_proto(record)
            self._parsed[key] = preset
            while len(self._parsed) > _CACHED:
                self._parsed.popitem(last=False)
        self._parsed.move_to_end(key)
        return preset

    async def expand(self, refs: Sequence[str], field: str = "presets") -> list[Applied]:
        """The presets `refs` name, in order; each fault names its `field[i]`."""
        if len(refs) > MAX_PRESETS:
            raise InvalidArgument.field(field, f"{len(refs)} presets; at most {MAX_PRESETS}")
        parsed, violations = [], []
        for i, ref in enumerate(refs):
            try:
                parsed.append(parse_ref(ref, f"{field}[{i}]"))
            except InvalidArgument as exc:
                violations += exc.violations
        check(violations)
        applied = []
        for i, (name, version) in enumerate(parsed):
            try:
                preset = await self.read(name, version)
            except ChunkscopeError as exc:
                raise renamed(exc, "", f"{field}[{i}]") from None
            applied.append(Applied(name, preset.version, tuple(preset.interventions)))
        return applied


def renamed(exc: ChunkscopeError, old: str, new: str) -> ChunkscopeError:
    """`exc` with the field `old` called `new`; with `old` empty, `new` put before the message."""
    if isinstance(exc, InvalidArgument):
        if old:
            violations = [
                FieldViolation(new + v.field[len(old):] if v.field.startswith(old) else v.field,
                               v.description)
                for v in exc.violations
            ]  # fmt: skip
        else:
            violations = [FieldViolation(new, f"{v.field}: {v.description}")
                          for v in exc.violations]  # fmt: skip
        return InvalidArgument(violations, reason=exc.reason, metadata=exc.metadata)
    if old:
        message, metadata = exc.message.replace(old, new), exc.metadata
    else:
        message, metadata = f"{new}: {exc.message}", {**exc.metadata, "field": new}
    try:
        return type(exc)(message, reason=exc.reason, metadata=metadata)
    except TypeError:  # a class with its own constructor: as it is
        return exc
