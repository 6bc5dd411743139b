"""The one version of chunkscope: the API, the server and the four client packages.

`VERSION` at the repository root holds it; every manifest and version constant repeats it, and
this script keeps them equal:

    python scripts/version.py            # check: exit 1, naming each place that differs
    python scripts/version.py set 0.3.0  # write VERSION and every place below

The places are literal strings (no build-time lookup), so each package reads its own version from
its own manifest, as its package manager expects. `make release-check` runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "VERSION"
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")
V = r"(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)"  # the version in each pattern: its only group


@dataclass(frozen=True)
class Place:
    path: str
    pattern: str  # one group: the version
    count: int = 1  # how many times the pattern must match

    def versions(self) -> list[str]:
        return re.findall(self.pattern, (ROOT / self.path).read_text(), flags=re.M)

    def set(self, version: str) -> None:
        path = ROOT / self.path

        def swap(m: re.Match[str]) -> str:
            start, end = m.span(1)
            return m.group(0)[: start - m.start()] + version + m.group(0)[end - m.start() :]

        path.write_text(re.sub(self.pattern, swap, path.read_text(), flags=re.M))


PLACES = [
    # The server package (its --version, the ready line, and what dictionaries record).
    Place("pyproject.toml", rf'^version = "{V}"$'),
    Place("pyproject.toml", rf'^  "chunkscope-client=={V}",$'),
    Place("service/chunkscope/__init__.py", rf'^__version__ = "{V}"$'),
    # The clients.
    Place("clients/python/pyproject.toml", rf'^version = "{V}"$'),
    Place("clients/python/src/chunkscope_client/__init__.py", rf'^__version__ = "{V}"$'),
    Place("clients/go/version.go", rf'^const Version = "{V}"$'),
    Place("clients/typescript/package.json", rf'^  "version": "{V}",$'),
    Place("clients/typescript/package-lock.json", rf'^  "version": "{V}",$'),
    Place("clients/typescript/package-lock.json",
          rf'^    "": {{\n      "name": "@chunkscope/client",\n      "version": "{V}",$'),
    Place("clients/typescript/src/version.ts", rf'^export const VERSION = "{V}";$'),
    Place("clients/java/pom.xml",
          rf"^  <artifactId>chunkscope-client</artifactId>\n  <version>{V}</version>$"),
    Place("clients/java/README.md",
          rf"<artifactId>chunkscope-client</artifactId><version>{V}</version>"),
    # What the server records in each dictionary (chunkscope_version), as the vectors hold it.
    Place("tests/vectors/get_dictionary.json", rf'"chunkscopeVersion": "{V}"'),
    Place("tests/vectors/list_dictionaries.json", rf'"chunkscopeVersion": "{V}"'),
    # The image the deployment runs.
    Place("deploy/kubernetes/base/deployment.yaml", rf"^ +image: chunkscope:{V}$"),
    Place("deploy/kubernetes/overlays/gpu/kustomization.yaml", rf"^ +newTag: {V}$"),
    Place("deploy/kubernetes/overlays/gpu-tls/kustomization.yaml", rf"^ +newTag: {V}$"),
    Place("docs/DEPLOY.md", rf"^docker build -t chunkscope:{V} \."),
    # The release notes have a section for it.
    Place("CHANGELOG.md", rf"^## \[{V}\] - \d{{4}}-\d{{2}}-\d{{2}}$", count=-1),
]  # fmt: skip


def read_version() -> str:
    version = VERSION_FILE.read_text().strip()
    if not SEMVER.fullmatch(version):
        raise SystemExit(f"VERSION: {version!r} is not a semantic version (X.Y.Z)")
    return version


def check(version: str) -> list[str]:
    """Every place that does not hold `version` (empty when all agree)."""
    problems = []
    for place in PLACES:
        if not (ROOT / place.path).is_file():
            problems.append(f"{place.path}: missing")
            continue
        found = place.versions()
        if place.count == -1:  # the changelog: one section per release, this one included
            if version not in found:
                problems.append(f"{place.path}: no '## [{version}] - YYYY-MM-DD' section")
        elif len(found) != place.count:
            problems.append(f"{place.path}: {len(found)} matches of {place.pattern!r}")
        elif any(v != version for v in found):
            problems.append(f"{place.path}: {', '.join(found)} instead of {version}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("check", help="every place holds VERSION (the default)")
    setter = sub.add_parser("set", help="write VERSION and every place")
    setter.add_argument("version")
    args = parser.parse_args()
    if args.command == "set":
        if not SEMVER.fullmatch(args.version):
            parser.error(f"{args.version!r} is not a semantic version (X.Y.Z)")
        VERSION_FILE.write_text(args.version + "\n")
        for place in PLACES:
            if place.count != -1:
                place.set(args.version)
    version = read_version()
    problems = check(version)
    for problem in problems:
        print(f"version {version}: {problem}", file=sys.stderr)
    if not problems:
        print(f"version {version}: {len(PLACES)} places agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
