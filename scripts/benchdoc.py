"""What the benchmark scripts share: the demo's sentences and concepts, the machine's load and
CPU name, and their sections of BENCHMARKS.md."""

from __future__ import annotations

import os
from pathlib import Path

# Sentences about the demo's concepts (and some about neither), used as Detect inputs and
# extraction texts by every benchmark.
SENTENCES = [
    "The cheese shop on the corner sells a sharp cheddar and a soft goat cheese.",
    "We walked along the river until it bent south past the old mill.",
    "She played music every evening, and the notes filled the narrow street.",
    "The train left the station at noon and arrived in the city by evening.",
    "Rain fell on the roofs all afternoon while the clocks ticked in the hall.",
    "A wooden bridge crossed the river where the water was narrowest.",
    "The market had cheese from three valleys and bread from the bakery.",
    "Music lessons start in spring; the teacher brings her own piano.",
]
CONCEPTS = ("cheese", "river", "music")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as BENCHMARKS.md reports them."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


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
