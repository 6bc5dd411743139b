"""The client commands of `chunkscope`: models, dictionaries, detect, generate, analysis, report.

They speak to a running server with `chunkscope_client` and import neither torch nor the
server (the import-linter contract `client-commands-no-server` checks it).
"""

from __future__ import annotations

from typing import Any

COMMANDS = {
    "models": "register, list, show, unregister models; list hook points (client)",
    "dictionaries": "extract, list, show, export, import, delete dictionaries (client)",
    "detect": "detect chunks in texts, firing tokens highlighted (client)",
    "generate": "generate with interventions, streamed, control arm beside (client)",
    "analysis": "compare representations, layer similarity (client)",
    "report": "write a dictionary's chunk page: one self-contained HTML file (client)",
}


def _root() -> Any:
    import click

    from chunkscope.commands.common import EXIT_CODES_HELP
    from chunkscope.commands.inference import analysis, detect, generate
    from chunkscope.commands.report import report
    from chunkscope.commands.resources import dictionaries, models

    root = click.Group("chunkscope", help="Client commands. " + EXIT_CODES_HELP,
                       context_settings={"help_option_names": ["-h", "--help"]})  # fmt: skip
    for command in (models, dictionaries, detect, generate, analysis, report):
        command.help = (command.help or "") + "\n\n" + EXIT_CODES_HELP
        root.add_command(command)
    return root


def main(argv: list[str]) -> int:
    """Run one client command; returns its exit code (see EXIT_CODES_HELP)."""
    import click

    from chunkscope.commands.common import EXIT_INTERRUPTED, err

    try:
        _root().main(args=argv, prog_name="chunkscope", standalone_mode=False)
    except click.ClickException as error:  # usage errors: 2
        error.show()
        return error.exit_code
    except click.exceptions.Exit as done:  # --help
        return done.exit_code
    except (click.Abort, KeyboardInterrupt):
        err.print("interrupted", markup=False)
        return EXIT_INTERRUPTED
    except SystemExit as stop:  # a failed call, already reported
        return stop.code if isinstance(stop.code, int) else 1
    except BrokenPipeError:  # `| head`: stop quietly, and let the exit's flush go nowhere
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
