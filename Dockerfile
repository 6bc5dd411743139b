# chunkscope server image. Build: docker build -t chunkscope .
# Every command below is also run outside Docker by CI (`make test`: the same pip install with the
# same constraints, and the same health probe), since no Docker engine runs where CI does.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY constraints.txt pyproject.toml README.md LICENSE ./
COPY clients/python ./clients/python
COPY service ./service
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ./clients/python . \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --force-reinstall -c constraints.txt \
      opentelemetry-proto googleapis-common-protos \
 && /opt/venv/bin/python -c "import chunkscope.server, opentelemetry.exporter.otlp.proto.grpc.trace_exporter"

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    CHUNKSCOPE_HOST=0.0.0.0 \
    CHUNKSCOPE_PORT=50051 \
    CHUNKSCOPE_METRICS_PORT=9464 \
    CHUNKSCOPE_DATA_DIR=/var/lib/chunkscope \
    CHUNKSCOPE_MODEL_ROOTS=/models
COPY --from=build /opt/venv /opt/venv
RUN mkdir -p /var/lib/chunkscope /models && chown 10001:10001 /var/lib/chunkscope
USER 10001:10001
VOLUME ["/var/lib/chunkscope"]
# 8000: the OpenAI-compatible HTTP front when CHUNKSCOPE_HTTP_PORT=8000 (off by default).
EXPOSE 50051 9464 8000
# Model loading takes time on first start (and restores every registered model): long start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-m", "chunkscope.healthcheck", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["python", "-m", "chunkscope", "serve"]
