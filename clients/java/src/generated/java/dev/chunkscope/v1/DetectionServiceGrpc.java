package dev.chunkscope.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Detects which chunks of stored dictionaries are active on new inputs, token by token.
 * Every dictionary named must belong to the model named (same content hash); each is applied at
 * its own hook point, all of them in one forward pass per batch.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class DetectionServiceGrpc {

  private DetectionServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "chunkscope.v1.DetectionService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.DetectRequest,
      dev.chunkscope.v1.DetectResponse> getDetectMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Detect",
      requestType = dev.chunkscope.v1.DetectRequest.class,
      responseType = dev.chunkscope.v1.DetectResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.DetectRequest,
      dev.chunkscope.v1.DetectResponse> getDetectMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.DetectRequest, dev.chunkscope.v1.DetectResponse> getDetectMethod;
    if ((getDetectMethod = DetectionServiceGrpc.getDetectMethod) == null) {
      synchronized (DetectionServiceGrpc.class) {
        if ((getDetectMethod = DetectionServiceGrpc.getDetectMethod) == null) {
          DetectionServiceGrpc.getDetectMethod = getDetectMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.DetectRequest, dev.chunkscope.v1.DetectResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Detect"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DetectRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DetectResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DetectionServiceMethodDescriptorSupplier("Detect"))
              .build();
        }
      }
    }
    return getDetectMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.StreamDetectRequest,
      dev.chunkscope.v1.StreamDetectResponse> getStreamDetectMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "StreamDetect",
      requestType = dev.chunkscope.v1.StreamDetectRequest.class,
      responseType = dev.chunkscope.v1.StreamDetectResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.BIDI_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.StreamDetectRequest,
      dev.chunkscope.v1.StreamDetectResponse> getStreamDetectMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.StreamDetectRequest, dev.chunkscope.v1.StreamDetectResponse> getStreamDetectMethod;
    if ((getStreamDetectMethod = DetectionServiceGrpc.getStreamDetectMethod) == null) {
      synchronized (DetectionServiceGrpc.class) {
        if ((getStreamDetectMethod = DetectionServiceGrpc.getStreamDetectMethod) == null) {
          DetectionServiceGrpc.getStreamDetectMethod = getStreamDetectMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.StreamDetectRequest, dev.chunkscope.v1.StreamDetectResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.BIDI_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "StreamDetect"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.StreamDetectRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.StreamDetectResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DetectionServiceMethodDescriptorSupplier("StreamDetect"))
              .build();
        }
      }
    }
    return getStreamDetectMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static DetectionServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DetectionServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DetectionServiceStub>() {
        @java.lang.Override
        public DetectionServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DetectionServiceStub(channel, callOptions);
        }
      };
    return DetectionServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static DetectionServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DetectionServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DetectionServiceBlockingV2Stub>() {
        @java.lang.Override
        public DetectionServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DetectionServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return DetectionServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static DetectionServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DetectionServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DetectionServiceBlockingStub>() {
        @java.lang.Override
        public DetectionServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DetectionServiceBlockingStub(channel, callOptions);
        }
      };
    return DetectionServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static DetectionServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DetectionServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DetectionServiceFutureStub>() {
        @java.lang.Override
        public DetectionServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DetectionServiceFutureStub(channel, callOptions);
        }
      };
    return DetectionServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Detects which chunks of stored dictionaries are active on new inputs, token by token.
   * Every dictionary named must belong to the model named (same content hash); each is applied at
   * its own hook point, all of them in one forward pass per batch.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Detects chunks in a batch of inputs.
     * </pre>
     */
    default void detect(dev.chunkscope.v1.DetectRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DetectResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDetectMethod(), responseObserver);
    }

    /**
     * <pre>
     * For monitoring pipelines: each message is an input (or the next segment of one), each reply
     * its result, in order. The first message names the model and dictionaries.
     * </pre>
     */
    default io.grpc.stub.StreamObserver<dev.chunkscope.v1.StreamDetectRequest> streamDetect(
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.StreamDetectResponse> responseObserver) {
      return io.grpc.stub.ServerCalls.asyncUnimplementedStreamingCall(getStreamDetectMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service DetectionService.
   * <pre>
   * Detects which chunks of stored dictionaries are active on new inputs, token by token.
   * Every dictionary named must belong to the model named (same content hash); each is applied at
   * its own hook point, all of them in one forward pass per batch.
   * </pre>
   */
  public static abstract class DetectionServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return DetectionServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service DetectionService.
   * <pre>
   * Detects which chunks of stored dictionaries are active on new inputs, token by token.
   * Every dictionary named must belong to the model named (same content hash); each is applied at
   * its own hook point, all of them in one forward pass per batch.
   * </pre>
   */
  public static final class DetectionServiceStub
      extends io.grpc.stub.AbstractAsyncStub<DetectionServiceStub> {
    private DetectionServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DetectionServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DetectionServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Detects chunks in a batch of inputs.
     * </pre>
     */
    public void detect(dev.chunkscope.v1.DetectRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DetectResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDetectMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * For monitoring pipelines: each message is an input (or the next segment of one), each reply
     * its result, in order. The first message names the model and dictionaries.
     * </pre>
     */
    public io.grpc.stub.StreamObserver<dev.chunkscope.v1.StreamDetectRequest> streamDetect(
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.StreamDetectResponse> responseObserver) {
      return io.grpc.stub.ClientCalls.asyncBidiStreamingCall(
          getChannel().newCall(getStreamDetectMethod(), getCallOptions()), responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service DetectionService.
   * <pre>
   * Detects which chunks of stored dictionaries are active on new inputs, token by token.
   * Every dictionary named must belong to the model named (same content hash); each is applied at
   * its own hook point, all of them in one forward pass per batch.
   * </pre>
   */
  public static final class DetectionServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<DetectionServiceBlockingV2Stub> {
    private DetectionServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DetectionServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DetectionServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Detects chunks in a batch of inputs.
     * </pre>
     */
    public dev.chunkscope.v1.DetectResponse detect(dev.chunkscope.v1.DetectRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDetectMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * For monitoring pipelines: each message is an input (or the next segment of one), each reply
     * its result, in order. The first message names the model and dictionaries.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<dev.chunkscope.v1.StreamDetectRequest, dev.chunkscope.v1.StreamDetectResponse>
        streamDetect() {
      return io.grpc.stub.ClientCalls.blockingBidiStreamingCall(
          getChannel(), getStreamDetectMethod(), getCallOptions());
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service DetectionService.
   * <pre>
   * Detects which chunks of stored dictionaries are active on new inputs, token by token.
   * Every dictionary named must belong to the model named (same content hash); each is applied at
   * its own hook point, all of them in one forward pass per batch.
   * </pre>
   */
  public static final class DetectionServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<DetectionServiceBlockingStub> {
    private DetectionServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DetectionServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DetectionServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Detects chunks in a batch of inputs.
     * </pre>
     */
    public dev.chunkscope.v1.DetectResponse detect(dev.chunkscope.v1.DetectRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDetectMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service DetectionService.
   * <pre>
   * Detects which chunks of stored dictionaries are active on new inputs, token by token.
   * Every dictionary named must belong to the model named (same content hash); each is applied at
   * its own hook point, all of them in one forward pass per batch.
   * </pre>
   */
  public static final class DetectionServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<DetectionServiceFutureStub> {
    private DetectionServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DetectionServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DetectionServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Detects chunks in a batch of inputs.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.DetectResponse> detect(
        dev.chunkscope.v1.DetectRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDetectMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_DETECT = 0;
  private static final int METHODID_STREAM_DETECT = 1;

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
        case METHODID_DETECT:
          serviceImpl.detect((dev.chunkscope.v1.DetectRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.DetectResponse>) responseObserver);
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
        case METHODID_STREAM_DETECT:
          return (io.grpc.stub.StreamObserver<Req>) serviceImpl.streamDetect(
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.StreamDetectResponse>) responseObserver);
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getDetectMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.DetectRequest,
              dev.chunkscope.v1.DetectResponse>(
                service, METHODID_DETECT)))
        .addMethod(
          getStreamDetectMethod(),
          io.grpc.stub.ServerCalls.asyncBidiStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.StreamDetectRequest,
              dev.chunkscope.v1.StreamDetectResponse>(
                service, METHODID_STREAM_DETECT)))
        .build();
  }

  private static abstract class DetectionServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    DetectionServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.chunkscope.v1.DetectionProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("DetectionService");
    }
  }

  private static final class DetectionServiceFileDescriptorSupplier
      extends DetectionServiceBaseDescriptorSupplier {
    DetectionServiceFileDescriptorSupplier() {}
  }

  private static final class DetectionServiceMethodDescriptorSupplier
      extends DetectionServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    DetectionServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (DetectionServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new DetectionServiceFileDescriptorSupplier())
              .addMethod(getDetectMethod())
              .addMethod(getStreamDetectMethod())
              .build();
        }
      }
    }
    return result;
  }
}
