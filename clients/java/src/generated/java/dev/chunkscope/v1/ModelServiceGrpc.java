package dev.chunkscope.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Registers models from local sources and describes them.
 * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
 * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
 * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
 * persist in the server's data directory and are reloaded when the server restarts.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class ModelServiceGrpc {

  private ModelServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "chunkscope.v1.ModelService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.RegisterModelRequest,
      dev.chunkscope.v1.RegisterModelResponse> getRegisterModelMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "RegisterModel",
      requestType = dev.chunkscope.v1.RegisterModelRequest.class,
      responseType = dev.chunkscope.v1.RegisterModelResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.RegisterModelRequest,
      dev.chunkscope.v1.RegisterModelResponse> getRegisterModelMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.RegisterModelRequest, dev.chunkscope.v1.RegisterModelResponse> getRegisterModelMethod;
    if ((getRegisterModelMethod = ModelServiceGrpc.getRegisterModelMethod) == null) {
      synchronized (ModelServiceGrpc.class) {
        if ((getRegisterModelMethod = ModelServiceGrpc.getRegisterModelMethod) == null) {
          ModelServiceGrpc.getRegisterModelMethod = getRegisterModelMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.RegisterModelRequest, dev.chunkscope.v1.RegisterModelResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "RegisterModel"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.RegisterModelRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.RegisterModelResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ModelServiceMethodDescriptorSupplier("RegisterModel"))
              .build();
        }
      }
    }
    return getRegisterModelMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.GetModelRequest,
      dev.chunkscope.v1.GetModelResponse> getGetModelMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetModel",
      requestType = dev.chunkscope.v1.GetModelRequest.class,
      responseType = dev.chunkscope.v1.GetModelResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.GetModelRequest,
      dev.chunkscope.v1.GetModelResponse> getGetModelMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.GetModelRequest, dev.chunkscope.v1.GetModelResponse> getGetModelMethod;
    if ((getGetModelMethod = ModelServiceGrpc.getGetModelMethod) == null) {
      synchronized (ModelServiceGrpc.class) {
        if ((getGetModelMethod = ModelServiceGrpc.getGetModelMethod) == null) {
          ModelServiceGrpc.getGetModelMethod = getGetModelMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.GetModelRequest, dev.chunkscope.v1.GetModelResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetModel"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetModelRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetModelResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ModelServiceMethodDescriptorSupplier("GetModel"))
              .build();
        }
      }
    }
    return getGetModelMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ListModelsRequest,
      dev.chunkscope.v1.ListModelsResponse> getListModelsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListModels",
      requestType = dev.chunkscope.v1.ListModelsRequest.class,
      responseType = dev.chunkscope.v1.ListModelsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ListModelsRequest,
      dev.chunkscope.v1.ListModelsResponse> getListModelsMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ListModelsRequest, dev.chunkscope.v1.ListModelsResponse> getListModelsMethod;
    if ((getListModelsMethod = ModelServiceGrpc.getListModelsMethod) == null) {
      synchronized (ModelServiceGrpc.class) {
        if ((getListModelsMethod = ModelServiceGrpc.getListModelsMethod) == null) {
          ModelServiceGrpc.getListModelsMethod = getListModelsMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ListModelsRequest, dev.chunkscope.v1.ListModelsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListModels"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListModelsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListModelsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ModelServiceMethodDescriptorSupplier("ListModels"))
              .build();
        }
      }
    }
    return getListModelsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.UnregisterModelRequest,
      dev.chunkscope.v1.UnregisterModelResponse> getUnregisterModelMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "UnregisterModel",
      requestType = dev.chunkscope.v1.UnregisterModelRequest.class,
      responseType = dev.chunkscope.v1.UnregisterModelResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.UnregisterModelRequest,
      dev.chunkscope.v1.UnregisterModelResponse> getUnregisterModelMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.UnregisterModelRequest, dev.chunkscope.v1.UnregisterModelResponse> getUnregisterModelMethod;
    if ((getUnregisterModelMethod = ModelServiceGrpc.getUnregisterModelMethod) == null) {
      synchronized (ModelServiceGrpc.class) {
        if ((getUnregisterModelMethod = ModelServiceGrpc.getUnregisterModelMethod) == null) {
          ModelServiceGrpc.getUnregisterModelMethod = getUnregisterModelMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.UnregisterModelRequest, dev.chunkscope.v1.UnregisterModelResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "UnregisterModel"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.UnregisterModelRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.UnregisterModelResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ModelServiceMethodDescriptorSupplier("UnregisterModel"))
              .build();
        }
      }
    }
    return getUnregisterModelMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ListHookPointsRequest,
      dev.chunkscope.v1.ListHookPointsResponse> getListHookPointsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListHookPoints",
      requestType = dev.chunkscope.v1.ListHookPointsRequest.class,
      responseType = dev.chunkscope.v1.ListHookPointsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ListHookPointsRequest,
      dev.chunkscope.v1.ListHookPointsResponse> getListHookPointsMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ListHookPointsRequest, dev.chunkscope.v1.ListHookPointsResponse> getListHookPointsMethod;
    if ((getListHookPointsMethod = ModelServiceGrpc.getListHookPointsMethod) == null) {
      synchronized (ModelServiceGrpc.class) {
        if ((getListHookPointsMethod = ModelServiceGrpc.getListHookPointsMethod) == null) {
          ModelServiceGrpc.getListHookPointsMethod = getListHookPointsMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ListHookPointsRequest, dev.chunkscope.v1.ListHookPointsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListHookPoints"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListHookPointsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListHookPointsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ModelServiceMethodDescriptorSupplier("ListHookPoints"))
              .build();
        }
      }
    }
    return getListHookPointsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static ModelServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ModelServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ModelServiceStub>() {
        @java.lang.Override
        public ModelServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ModelServiceStub(channel, callOptions);
        }
      };
    return ModelServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static ModelServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ModelServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ModelServiceBlockingV2Stub>() {
        @java.lang.Override
        public ModelServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ModelServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return ModelServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static ModelServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ModelServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ModelServiceBlockingStub>() {
        @java.lang.Override
        public ModelServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ModelServiceBlockingStub(channel, callOptions);
        }
      };
    return ModelServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static ModelServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ModelServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ModelServiceFutureStub>() {
        @java.lang.Override
        public ModelServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ModelServiceFutureStub(channel, callOptions);
        }
      };
    return ModelServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Registers models from local sources and describes them.
   * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
   * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
   * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
   * persist in the server's data directory and are reloaded when the server restarts.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Registers a model and starts loading it. Returns at once with state LOADING, or, when
     * `wait` is set, once the model is READY (or fails). Recommended deadline: 120 s with wait.
     * </pre>
     */
    default void registerModel(dev.chunkscope.v1.RegisterModelRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.RegisterModelResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRegisterModelMethod(), responseObserver);
    }

    /**
     * <pre>
     * Describes one registered model.
     * </pre>
     */
    default void getModel(dev.chunkscope.v1.GetModelRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetModelResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetModelMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists registered models in name order.
     * </pre>
     */
    default void listModels(dev.chunkscope.v1.ListModelsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListModelsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListModelsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Unloads a model and forgets its registration.
     * </pre>
     */
    default void unregisterModel(dev.chunkscope.v1.UnregisterModelRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.UnregisterModelResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getUnregisterModelMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists the canonical hook points of a READY model with their activation shapes.
     * </pre>
     */
    default void listHookPoints(dev.chunkscope.v1.ListHookPointsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListHookPointsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListHookPointsMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service ModelService.
   * <pre>
   * Registers models from local sources and describes them.
   * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
   * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
   * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
   * persist in the server's data directory and are reloaded when the server restarts.
   * </pre>
   */
  public static abstract class ModelServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return ModelServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service ModelService.
   * <pre>
   * Registers models from local sources and describes them.
   * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
   * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
   * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
   * persist in the server's data directory and are reloaded when the server restarts.
   * </pre>
   */
  public static final class ModelServiceStub
      extends io.grpc.stub.AbstractAsyncStub<ModelServiceStub> {
    private ModelServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ModelServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ModelServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Registers a model and starts loading it. Returns at once with state LOADING, or, when
     * `wait` is set, once the model is READY (or fails). Recommended deadline: 120 s with wait.
     * </pre>
     */
    public void registerModel(dev.chunkscope.v1.RegisterModelRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.RegisterModelResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRegisterModelMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Describes one registered model.
     * </pre>
     */
    public void getModel(dev.chunkscope.v1.GetModelRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetModelResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetModelMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists registered models in name order.
     * </pre>
     */
    public void listModels(dev.chunkscope.v1.ListModelsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListModelsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListModelsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Unloads a model and forgets its registration.
     * </pre>
     */
    public void unregisterModel(dev.chunkscope.v1.UnregisterModelRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.UnregisterModelResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getUnregisterModelMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists the canonical hook points of a READY model with their activation shapes.
     * </pre>
     */
    public void listHookPoints(dev.chunkscope.v1.ListHookPointsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListHookPointsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListHookPointsMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service ModelService.
   * <pre>
   * Registers models from local sources and describes them.
   * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
   * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
   * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
   * persist in the server's data directory and are reloaded when the server restarts.
   * </pre>
   */
  public static final class ModelServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<ModelServiceBlockingV2Stub> {
    private ModelServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ModelServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ModelServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Registers a model and starts loading it. Returns at once with state LOADING, or, when
     * `wait` is set, once the model is READY (or fails). Recommended deadline: 120 s with wait.
     * </pre>
     */
    public dev.chunkscope.v1.RegisterModelResponse registerModel(dev.chunkscope.v1.RegisterModelRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getRegisterModelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Describes one registered model.
     * </pre>
     */
    public dev.chunkscope.v1.GetModelResponse getModel(dev.chunkscope.v1.GetModelRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetModelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists registered models in name order.
     * </pre>
     */
    public dev.chunkscope.v1.ListModelsResponse listModels(dev.chunkscope.v1.ListModelsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListModelsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Unloads a model and forgets its registration.
     * </pre>
     */
    public dev.chunkscope.v1.UnregisterModelResponse unregisterModel(dev.chunkscope.v1.UnregisterModelRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getUnregisterModelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the canonical hook points of a READY model with their activation shapes.
     * </pre>
     */
    public dev.chunkscope.v1.ListHookPointsResponse listHookPoints(dev.chunkscope.v1.ListHookPointsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListHookPointsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service ModelService.
   * <pre>
   * Registers models from local sources and describes them.
   * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
   * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
   * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
   * persist in the server's data directory and are reloaded when the server restarts.
   * </pre>
   */
  public static final class ModelServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<ModelServiceBlockingStub> {
    private ModelServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ModelServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ModelServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Registers a model and starts loading it. Returns at once with state LOADING, or, when
     * `wait` is set, once the model is READY (or fails). Recommended deadline: 120 s with wait.
     * </pre>
     */
    public dev.chunkscope.v1.RegisterModelResponse registerModel(dev.chunkscope.v1.RegisterModelRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRegisterModelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Describes one registered model.
     * </pre>
     */
    public dev.chunkscope.v1.GetModelResponse getModel(dev.chunkscope.v1.GetModelRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetModelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists registered models in name order.
     * </pre>
     */
    public dev.chunkscope.v1.ListModelsResponse listModels(dev.chunkscope.v1.ListModelsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListModelsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Unloads a model and forgets its registration.
     * </pre>
     */
    public dev.chunkscope.v1.UnregisterModelResponse unregisterModel(dev.chunkscope.v1.UnregisterModelRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getUnregisterModelMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the canonical hook points of a READY model with their activation shapes.
     * </pre>
     */
    public dev.chunkscope.v1.ListHookPointsResponse listHookPoints(dev.chunkscope.v1.ListHookPointsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListHookPointsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service ModelService.
   * <pre>
   * Registers models from local sources and describes them.
   * A model is loaded from a path under one of the server's configured model roots: a Hugging Face
   * directory with safetensors weights, a GGUF file, or a recurrent-network checkpoint (config.json +
   * model.safetensors). Pickle checkpoints are refused and remote code is never run. Registrations
   * persist in the server's data directory and are reloaded when the server restarts.
   * </pre>
   */
  public static final class ModelServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<ModelServiceFutureStub> {
    private ModelServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ModelServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ModelServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Registers a model and starts loading it. Returns at once with state LOADING, or, when
     * `wait` is set, once the model is READY (or fails). Recommended deadline: 120 s with wait.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.RegisterModelResponse> registerModel(
        dev.chunkscope.v1.RegisterModelRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRegisterModelMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Describes one registered model.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.GetModelResponse> getModel(
        dev.chunkscope.v1.GetModelRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetModelMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists registered models in name order.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.ListModelsResponse> listModels(
        dev.chunkscope.v1.ListModelsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListModelsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Unloads a model and forgets its registration.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.UnregisterModelResponse> unregisterModel(
        dev.chunkscope.v1.UnregisterModelRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getUnregisterModelMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists the canonical hook points of a READY model with their activation shapes.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.ListHookPointsResponse> listHookPoints(
        dev.chunkscope.v1.ListHookPointsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListHookPointsMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_REGISTER_MODEL = 0;
  private static final int METHODID_GET_MODEL = 1;
  private static final int METHODID_LIST_MODELS = 2;
  private static final int METHODID_UNREGISTER_MODEL = 3;
  private static final int METHODID_LIST_HOOK_POINTS = 4;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_REGISTER_MODEL:
          serviceImpl.registerModel((dev.chunkscope.v1.RegisterModelRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.RegisterModelResponse>) responseObserver);
          break;
        case METHODID_GET_MODEL:
          serviceImpl.getModel((dev.chunkscope.v1.GetModelRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetModelResponse>) responseObserver);
          break;
        case METHODID_LIST_MODELS:
          serviceImpl.listModels((dev.chunkscope.v1.ListModelsRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListModelsResponse>) responseObserver);
          break;
        case METHODID_UNREGISTER_MODEL:
          serviceImpl.unregisterModel((dev.chunkscope.v1.UnregisterModelRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.UnregisterModelResponse>) responseObserver);
          break;
        case METHODID_LIST_HOOK_POINTS:
          serviceImpl.listHookPoints((dev.chunkscope.v1.ListHookPointsRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListHookPointsResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getRegisterModelMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.RegisterModelRequest,
              dev.chunkscope.v1.RegisterModelResponse>(
                service, METHODID_REGISTER_MODEL)))
        .addMethod(
          getGetModelMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.GetModelRequest,
              dev.chunkscope.v1.GetModelResponse>(
                service, METHODID_GET_MODEL)))
        .addMethod(
          getListModelsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.ListModelsRequest,
              dev.chunkscope.v1.ListModelsResponse>(
                service, METHODID_LIST_MODELS)))
        .addMethod(
          getUnregisterModelMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.UnregisterModelRequest,
              dev.chunkscope.v1.UnregisterModelResponse>(
                service, METHODID_UNREGISTER_MODEL)))
        .addMethod(
          getListHookPointsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.ListHookPointsRequest,
              dev.chunkscope.v1.ListHookPointsResponse>(
                service, METHODID_LIST_HOOK_POINTS)))
        .build();
  }

  private static abstract class ModelServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    ModelServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.chunkscope.v1.ModelsProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("ModelService");
    }
  }

  private static final class ModelServiceFileDescriptorSupplier
      extends ModelServiceBaseDescriptorSupplier {
    ModelServiceFileDescriptorSupplier() {}
  }

  private static final class ModelServiceMethodDescriptorSupplier
      extends ModelServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    ModelServiceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (ModelServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new ModelServiceFileDescriptorSupplier())
              .addMethod(getRegisterModelMethod())
              .addMethod(getGetModelMethod())
              .addMethod(getListModelsMethod())
              .addMethod(getUnregisterModelMethod())
              .addMethod(getListHookPointsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
