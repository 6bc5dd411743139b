"""ModelService: decode the request, call the registry, encode the reply. Nothing else."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2

from chunkscope.engine.registry import ModelInfo, ModelRegistry
from chunkscope.errors import InvalidArgument
from chunkscope_client.v1 import common_pb2, models_pb2, models_pb2_grpc

_FORMAT_TO_PROTO = {
    "hf_safetensors": models_pb2.MODEL_FORMAT_HF_SAFETENSORS,
    "gguf": models_pb2.MODEL_FORMAT_GGUF,
    "recurrent": models_pb2.MODEL_FORMAT_RECURRENT,
}
_FORMAT_FROM_PROTO = {v: k for k, v in _FORMAT_TO_PROTO.items()}
_FORMAT_FROM_PROTO[models_pb2.MODEL_FORMAT_UNSPECIFIED] = ""
_STATE_TO_PROTO = {
    "LOADING": models_pb2.MODEL_STATE_LOADING,
    "READY": models_pb2.MODEL_STATE_READY,
    "FAILED": models_pb2.MODEL_STATE_FAILED,
}


def model_to_proto(info: ModelInfo) -> models_pb2.Model:
    registered = timestamp_pb2.Timestamp()
    registered.FromDatetime(info.registered_at)
    return models_pb2.Model(
        name=info.name,
        source_path=info.source_path,
        format=_FORMAT_TO_PROTO.get(info.format, models_pb2.MODEL_FORMAT_UNSPECIFIED),
        state=_STATE_TO_PROTO[info.state],
        state_reason=info.state_reason,
        content_hash=info.content_hash,
        architecture=info.architecture,
        num_blocks=info.num_blocks,
        hidden_size=info.hidden_size,
        vocab_size=info.vocab_size,
        parameter_count=info.parameter_count,
        device=info.device,
        dtype=info.dtype,
        registered_at=registered,
        load_seconds=info.load_seconds,
        symbols=list(info.symbols),
    )


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def RegisterModel(
        self, request: models_pb2.RegisterModelRequest, context: Any
    ) -> models_pb2.RegisterModelResponse:
        if request.format not in _FORMAT_FROM_PROTO:
            raise InvalidArgument.field("format", f"unknown ModelFormat value {request.format}")
        info = await self.registry.register(
            request.name,
            request.source_path,
            _FORMAT_FROM_PROTO[request.format],
            request.dtype,
            request.wait,
        )
        return models_pb2.RegisterModelResponse(model=model_to_proto(info))

    async def GetModel(
        self, request: models_pb2.GetModelRequest, context: Any
    ) -> models_pb2.GetModelResponse:
        return models_pb2.GetModelResponse(model=model_to_proto(self.registry.get(request.name)))

    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: Any
    ) -> models_pb2.ListModelsResponse:
        page = request.page
        infos, token, total = self.registry.list_page(page.page_size, page.page_token)
        return models_pb2.ListModelsResponse(
            models=[model_to_proto(i) for i in infos],
            page=common_pb2.PageResponse(next_page_token=token, total_size=total),
        )

    async def UnregisterModel(
        self, request: models_pb2.UnregisterModelRequest, context: Any
    ) -> models_pb2.UnregisterModelResponse:
        info = await self.registry.unregister(request.name)
        return models_pb2.UnregisterModelResponse(model=model_to_proto(info))

    async def ListHookPoints(
        self, request: models_pb2.ListHookPointsRequest, context: Any
    ) -> models_pb2.ListHookPointsResponse:
        if not request.HasField("model") or not request.model.name:
            raise InvalidArgument.field("model.name", "required: the registered model's name")
        points = self.registry.hook_points(request.model.name, request.model.content_hash)
        return models_pb2.ListHookPointsResponse(
            hook_points=[
                common_pb2.HookPoint(
                    name=p.name, shape=list(p.shape), description=p.description, block=p.block
                )
                for p in points
            ]
        )
