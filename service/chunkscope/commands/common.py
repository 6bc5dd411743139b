"""What every client command shares: the connection options, output, errors and exit codes.

Client commands speak to a running server through `chunkscope_client`; they import neither
torch nor the server (an import-linter contract checks it), so they start fast on a box that
only monitors.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console

from chunkscope_client import ChunkscopeError, Client

# Exit codes: 0 OK, 2 a usage error (click's), 10 + the gRPC status code's number for a failed
# call (so no status collides with the usage code), 130 when interrupted.
EXIT_OFFSET = 10
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 OK; 2 usage error; 10 + the gRPC status code of a failed call: "
    "11 CANCELLED, 12 UNKNOWN, 13 INVALID_ARGUMENT, 14 DEADLINE_EXCEEDED, 15 NOT_FOUND, "
    "16 ALREADY_EXISTS, 17 PERMISSION_DENIED, 18 RESOURCE_EXHAUSTED, 19 FAILED_PRECONDITION, "
    "20 ABORTED, 21 OUT_OF_RANGE, 22 UNIMPLEMENTED, 23 INTERNAL, 24 UNAVAILABLE, "
    "25 DATA_LOSS, 26 UNAUTHENTICATED; 130 interrupted."
)

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def exit_code(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    return 0 if number == 0 else EXIT_OFFSET + number


@dataclass
class Connection:
    """The options of one invocation: where the server is, how to reach it, how to print."""

    address: str
    token: str
    tls: bool
    ca_cert: Path | None
    client_cert: Path | None
    client_key: Path | None
    server_name: str | None
    timeout: float
    output: str

    @property
    def json(self) -> bool:
        return self.output == "json"

    def client(self) -> Client:
        if (self.client_cert is None) != (self.client_key is None):
            raise click.UsageError("--client-cert and --client-key go together (mutual TLS)")
        try:
            return Client.connect(
                self.address,
                timeout=self.timeout,
                token=self.token,
                tls=self.tls,
                root_certificates=self.ca_cert.read_bytes() if self.ca_cert else None,
                certificate_chain=self.client_cert.read_bytes() if self.client_cert else None,
                private_key=self.client_key.read_bytes() if self.client_key else None,
                server_name=self.server_name,
            )
        except ValueError as error:  # an address that is not host:port, or cannot be resolved
            raise click.BadParameter(str(error), param_hint="--address") from None
        except OSError as error:
            raise click.UsageError(f"cannot read a certificate or key: {error}") from None


def connection_options(command: F) -> F:
    """The options every client command takes; the command receives `conn: Connection`."""
    return _connection_options(command, ("--output", "-o"))


def connection_options_long(command: F) -> F:
    """The same options, with `--output` but no `-o` (for `report`, whose `-o` is its file)."""
    return _connection_options(command, ("--output",))


def _connection_options(command: F, output_flags: tuple[str, ...]) -> F:
    file = click.Path(exists=True, dir_okay=False, path_type=Path)
    options = [
        click.option("--address", envvar="CHUNKSCOPE_ADDRESS", default="127.0.0.1:50051",
                     show_default=True, show_envvar=True,
                     help="host:port, several of them with commas, or a gRPC target URI."),
        click.option("--token", envvar="CHUNKSCOPE_TOKEN", default="", show_envvar=True,
                     show_default=False,
                     help="API key. Prefer the environment variable: a flag's value shows "
                     "in `ps`."),
        click.option("--tls", is_flag=True, help="Use TLS (implied by any certificate option)."),
        click.option("--ca-cert", type=file, help="PEM CA certificate to trust."),
        click.option("--client-cert", type=file, help="PEM client certificate (mutual TLS)."),
        click.option("--client-key", type=file, help="PEM client key (mutual TLS)."),
        click.option("--server-name", help="Name to check the server's certificate against."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, help="Deadline of each call in seconds "
                     "(long streams such as extraction get at least an hour)."),
        click.option(*output_flags, "output", type=click.Choice(["table", "json"]),
                     default="table",
                     show_default=True,
                     help="table: for people; json: one JSON object per result (proto field "
                     "names, proto3 JSON mapping), JSON lines for streams."),
    ]  # fmt: skip

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        conn = Connection(
            address=kwargs.pop("address"),
            token=kwargs.pop("token"),
            tls=kwargs.pop("tls"),
            ca_cert=kwargs.pop("ca_cert"),
            client_cert=kwargs.pop("client_cert"),
            client_key=kwargs.pop("client_key"),
            server_name=kwargs.pop("server_name"),
            timeout=kwargs.pop("timeout"),
            output=kwargs.pop("output"),
        )
        return command(*args, conn=conn, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def as_dict(message: Message) -> dict[str, Any]:
    """A message in the proto3 JSON mapping with proto field names (snake_case), every field
    printed (zeros too); int64 fields are strings and bytes base64, as the mapping says."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(value: Message | dict[str, Any]) -> None:
    data = as_dict(value) if isinstance(value, Message) else value
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def enum_name(enum: Any, value: int, prefix: str) -> str:
    """MODEL_STATE_READY -> ready."""
    name: str = enum.Name(value)
    return name.removeprefix(prefix).lower()


def enum_value(enum: Any, name: str, prefix: str, option: str) -> Any:
    """ready (or MODEL_STATE_READY) -> the enum's number; a usage error if there is none."""
    key = name.upper().replace("-", "_")
    key = key if key.startswith(prefix) else prefix + key
    try:
        value = enum.Value(key)
    except ValueError:
        names = [
            v.name.removeprefix(prefix).lower()
            for v in enum.DESCRIPTOR.values
            if not v.name.endswith("UNSPECIFIED")
        ]
        raise click.BadParameter(
            f"{name!r} is not one of {', '.join(names)}", param_hint=option
        ) from None
    return value


def report(error: ChunkscopeError, address: str) -> int:
    """Print a failed call as the server said it; return its exit code."""
    line = f"error: {error.code.name}: {error.message}"
    if error.reason:
        line += f" (reason {error.reason})"
    err.print(line, markup=False)
    for field, description in error.field_violations:
        err.print(f"  {field}: {description}", markup=False)
    if error.code is grpc.StatusCode.UNAVAILABLE and not error.reason:
        err.print(
            f"hint: is a chunkscope server listening at {address}? "
            "Set --address or $CHUNKSCOPE_ADDRESS (and --tls if it serves TLS).",
            markup=False,
        )
    if error.code is grpc.StatusCode.UNAUTHENTICATED:
        err.print("hint: set the API key in $CHUNKSCOPE_TOKEN.", markup=False)
    return exit_code(error.code)


@contextmanager
def calls(conn: Connection) -> Iterator[Client]:
    """A client for the command's calls; a failed call ends the command with its exit code."""
    client = conn.client()
    try:
        yield client
    except ChunkscopeError as error:
        raise SystemExit(report(error, conn.address)) from None
    except grpc.RpcError as error:  # a call made on a raw stub
        raise SystemExit(report(ChunkscopeError.from_rpc_error(error), conn.address)) from None
    finally:
        client.close()


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a text file ('-' for standard input)."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def read_texts(path: Path, key: str, option: str) -> list[str]:
    """Texts from a file: a .json file holds a list of strings, or an object with that list under
    `key`; any other file (or '-', standard input) holds one text a line."""
    if path.suffix != ".json":
        return read_lines(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"{path}: not JSON ({error})", param_hint=option) from None
    items = data.get(key) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        where = f"under the key {key!r} " if isinstance(data, dict) else ""
        raise click.BadParameter(
            f"{path}: expected a list of strings {where}(name the key with its --...-key option)",
            param_hint=option,
        )
    return [t for t in items if t.strip()]
