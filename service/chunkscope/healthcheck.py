"""A gRPC health probe (for Docker HEALTHCHECK and scripts): exit 0 when SERVING, 1 otherwise.

Only grpcio is needed; it is small enough to run every few seconds in a container.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _channel(address: str, ca: str, cert: str, key: str) -> grpc.Channel:
    if not (ca or cert):
        return grpc.insecure_channel(address)

    def read(path: str) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    return grpc.secure_channel(address, credentials)


def check(
    address: str, service: str = "", timeout: float = 3.0, ca: str = "", cert: str = "",
    key: str = "",
) -> str:  # fmt: skip
    """The serving status name of `service` ("" = whole server) at `address`.

    TLS when `ca` (PEM bundle to trust) or a client `cert` + `key` (mutual TLS) is given.
    """
    with _channel(address, ca, cert, key) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chunkscope healthcheck", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051", help="host:port of the server")
    parser.add_argument("--service", default="", help="service name; empty = whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait")
    parser.add_argument("--tls-ca", default="", help="PEM CA bundle: connect with TLS")
    parser.add_argument("--tls-cert", default="", help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", default="", help="PEM key of --tls-cert")
    args = parser.parse_args(argv)
    try:
        status = check(args.address, args.service, args.timeout, args.tls_ca, args.tls_cert,
                       args.tls_key)  # fmt: skip
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    raise SystemExit(main())
