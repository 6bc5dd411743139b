"""The OpenAI-compatible HTTP front (--http-port): Starlette routes served by uvicorn in the
server's own event loop, gated like gRPC (keys, roles, TLS, limits, metrics, audit)."""
