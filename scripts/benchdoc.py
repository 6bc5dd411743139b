"""What the benchmark scripts share: the CPU's name, and their sections of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str, name: str) -> None:
    """Put `section` (which starts and ends with the markers of `name`) into `path`.

    The text between `<!-- name:start -->` and `<!-- name:end -->` is replaced; without them,
    the section is appended. The rest of the file is kept as it is.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
