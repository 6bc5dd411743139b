"""User-given paths (model sources, corpus files): resolved once, every failure a clear error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chunkscope.errors import InvalidArgument

MAX_PATH_CHARS = 4096


def resolve_user_path(text: str, roots: tuple[Path, ...], field: str) -> Path:
    """`text` with ~ expanded, relative to the first root, symlinks resolved.

    A path the OS cannot even look at (NUL bytes, too long, ~unknownuser) is INVALID_ARGUMENT
    naming `field`; whether it lies inside a root is the caller's check.
    """
    if not text:
        raise InvalidArgument.field(field, "required: a path under a configured root")
    if "\x00" in text:
        raise InvalidArgument.field(field, "must not contain NUL characters")
    if len(text) > MAX_PATH_CHARS:
        raise InvalidArgument.field(field, f"longer than {MAX_PATH_CHARS} characters")
    try:
        raw = Path(text).expanduser()
        return (raw if raw.is_absolute() else roots[0] / raw).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidArgument.field(field, f"not a usable path ({exc})") from None


def path_test(path: Path, test: Callable[[Path], bool]) -> bool:
    """`test(path)` (exists, is_file, ...), False where the OS refuses to look (name too long)."""
    try:
        return test(path)
    except OSError:
        return False
