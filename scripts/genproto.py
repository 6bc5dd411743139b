"""Regenerate the Python stubs (messages, gRPC stubs and .pyi types) from protos/.

The protos live in package `chunkscope.v1`, so protoc emits imports such as
`from chunkscope.v1 import common_pb2`. The Python client distribution owns those modules as
`chunkscope_client.v1` (the server package is `chunkscope`, and a client box must not need it),
so the imports are rewritten here, once, deterministically. Run via `make proto`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "clients" / "python" / "src" / "chunkscope_client" / "v1"
# .py files: only import statements (the serialized descriptors must stay byte-identical);
# .pyi files: every reference (annotations name the modules too).
PY_IMPORT = re.compile(r"^(from|import) chunkscope\.v1\b", re.MULTILINE)
PYI_REF = re.compile(r"\bchunkscope\.v1\b")


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    bindir = str(Path(sys.executable).parent)  # protoc-gen-mypy lives beside the interpreter
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--python_out={tmp}",
                f"--grpc_python_out={tmp}",
                f"--mypy_out={tmp}",
                f"--mypy_grpc_out={tmp}",
                *protos,
            ],
            check=True,
            env=env,
        )
        generated = Path(tmp) / "chunkscope" / "v1"
        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        for src in sorted(generated.iterdir()):
            text = src.read_text()
            if src.suffix == ".pyi":
                text = PYI_REF.sub("chunkscope_client.v1", text)
            else:
                text = PY_IMPORT.sub(r"\1 chunkscope_client.v1", text)
            (OUT / src.name).write_text(text)
    (OUT / "__init__.py").write_text(
        '"""Generated from protos/chunkscope/v1 by scripts/genproto.py; do not edit."""\n'
    )
    (OUT / "py.typed").write_text("")
    print(f"generated {len(list(OUT.glob('*.py')))} modules in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
