package dev.chunkscope.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Activates or inhibits chunks during a forward pass or generation and reports the effect.
 * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class PerturbationServiceGrpc {

  private PerturbationServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "chunkscope.v1.PerturbationService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.PerturbRequest,
      dev.chunkscope.v1.PerturbResponse> getPerturbMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Perturb",
      requestType = dev.chunkscope.v1.PerturbRequest.class,
      responseType = dev.chunkscope.v1.PerturbResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.PerturbRequest,
      dev.chunkscope.v1.PerturbResponse> getPerturbMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.PerturbRequest, dev.chunkscope.v1.PerturbResponse> getPerturbMethod;
    if ((getPerturbMethod = PerturbationServiceGrpc.getPerturbMethod) == null) {
      synchronized (PerturbationServiceGrpc.class) {
        if ((getPerturbMethod = PerturbationServiceGrpc.getPerturbMethod) == null) {
          PerturbationServiceGrpc.getPerturbMethod = getPerturbMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.PerturbRequest, dev.chunkscope.v1.PerturbResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Perturb"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.PerturbRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.PerturbResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PerturbationServiceMethodDescriptorSupplier("Perturb"))
              .build();
        }
      }
    }
    return getPerturbMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.GenerateRequest,
      dev.chunkscope.v1.GenerateResponse> getGenerateMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Generate",
      requestType = dev.chunkscope.v1.GenerateRequest.class,
      responseType = dev.chunkscope.v1.GenerateResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.GenerateRequest,
      dev.chunkscope.v1.GenerateResponse> getGenerateMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.GenerateRequest, dev.chunkscope.v1.GenerateResponse> getGenerateMethod;
    if ((getGenerateMethod = PerturbationServiceGrpc.getGenerateMethod) == null) {
      synchronized (PerturbationServiceGrpc.class) {
        if ((getGenerateMethod = PerturbationServiceGrpc.getGenerateMethod) == null) {
          PerturbationServiceGrpc.getGenerateMethod = getGenerateMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.GenerateRequest, dev.chunkscope.v1.GenerateResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Generate"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GenerateRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GenerateResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PerturbationServiceMethodDescriptorSupplier("Generate"))
              .build();
        }
      }
    }
    return getGenerateMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static PerturbationServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceStub>() {
        @java.lang.Override
        public PerturbationServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PerturbationServiceStub(channel, callOptions);
        }
      };
    return PerturbationServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static PerturbationServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceBlockingV2Stub>() {
        @java.lang.Override
        public PerturbationServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PerturbationServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return PerturbationServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static PerturbationServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceBlockingStub>() {
        @java.lang.Override
        public PerturbationServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PerturbationServiceBlockingStub(channel, callOptions);
        }
      };
    return PerturbationServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static PerturbationServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PerturbationServiceFutureStub>() {
        @java.lang.Override
        public PerturbationServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PerturbationServiceFutureStub(channel, callOptions);
        }
      };
    return PerturbationServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Activates or inhibits chunks during a forward pass or generation and reports the effect.
   * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * One forward pass with interventions: log-probabilities at the last position before and after.
     * </pre>
     */
    default void perturb(dev.chunkscope.v1.PerturbRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.PerturbResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPerturbMethod(), responseObserver);
    }

    /**
     * <pre>
     * Generates with interventions, streaming tokens; optionally a control arm with the same
     * sampling parameters and seed, and detection rules applied server-side.
     * </pre>
     */
    default void generate(dev.chunkscope.v1.GenerateRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GenerateResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGenerateMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service PerturbationService.
   * <pre>
   * Activates or inhibits chunks during a forward pass or generation and reports the effect.
   * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
   * </pre>
   */
  public static abstract class PerturbationServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return PerturbationServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service PerturbationService.
   * <pre>
   * Activates or inhibits chunks during a forward pass or generation and reports the effect.
   * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
   * </pre>
   */
  public static final class PerturbationServiceStub
      extends io.grpc.stub.AbstractAsyncStub<PerturbationServiceStub> {
    private PerturbationServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PerturbationServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PerturbationServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * One forward pass with interventions: log-probabilities at the last position before and after.
     * </pre>
     */
    public void perturb(dev.chunkscope.v1.PerturbRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.PerturbResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPerturbMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Generates with interventions, streaming tokens; optionally a control arm with the same
     * sampling parameters and seed, and detection rules applied server-side.
     * </pre>
     */
    public void generate(dev.chunkscope.v1.GenerateRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GenerateResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getGenerateMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service PerturbationService.
   * <pre>
   * Activates or inhibits chunks during a forward pass or generation and reports the effect.
   * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
   * </pre>
   */
  public static final class PerturbationServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<PerturbationServiceBlockingV2Stub> {
    private PerturbationServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PerturbationServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PerturbationServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * One forward pass with interventions: log-probabilities at the last position before and after.
     * </pre>
     */
    public dev.chunkscope.v1.PerturbResponse perturb(dev.chunkscope.v1.PerturbRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getPerturbMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Generates with interventions, streaming tokens; optionally a control arm with the same
     * sampling parameters and seed, and detection rules applied server-side.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.chunkscope.v1.GenerateResponse>
        generate(dev.chunkscope.v1.GenerateRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getGenerateMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service PerturbationService.
   * <pre>
   * Activates or inhibits chunks during a forward pass or generation and reports the effect.
   * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
   * </pre>
   */
  public static final class PerturbationServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<PerturbationServiceBlockingStub> {
    private PerturbationServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PerturbationServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PerturbationServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * One forward pass with interventions: log-probabilities at the last position before and after.
     * </pre>
     */
    public dev.chunkscope.v1.PerturbResponse perturb(dev.chunkscope.v1.PerturbRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPerturbMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Generates with interventions, streaming tokens; optionally a control arm with the same
     * sampling parameters and seed, and detection rules applied server-side.
     * </pre>
     */
    public java.util.Iterator<dev.chunkscope.v1.GenerateResponse> generate(
        dev.chunkscope.v1.GenerateRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getGenerateMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service PerturbationService.
   * <pre>
   * Activates or inhibits chunks during a forward pass or generation and reports the effect.
   * Interventions are data (a chunk reference or a vector, a mode, positions), never code.
   * </pre>
   */
  public static final class PerturbationServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<PerturbationServiceFutureStub> {
    private PerturbationServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PerturbationServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PerturbationServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * One forward pass with interventions: log-probabilities at the last position before and after.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.PerturbResponse> perturb(
        dev.chunkscope.v1.PerturbRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPerturbMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_PERTURB = 0;
  private static final int METHODID_GENERATE = 1;

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
        case METHODID_PERTURB:
          serviceImpl.perturb((dev.chunkscope.v1.PerturbRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.PerturbResponse>) responseObserver);
          break;
        case METHODID_GENERATE:
          serviceImpl.generate((dev.chunkscope.v1.GenerateRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.GenerateResponse>) responseObserver);
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
          getPerturbMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.PerturbRequest,
              dev.chunkscope.v1.PerturbResponse>(
                service, METHODID_PERTURB)))
        .addMethod(
          getGenerateMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.GenerateRequest,
              dev.chunkscope.v1.GenerateResponse>(
                service, METHODID_GENERATE)))
        .build();
  }

  private static abstract class PerturbationServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    PerturbationServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.chunkscope.v1.PerturbationProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("PerturbationService");
    }
  }

  private static final class PerturbationServiceFileDescriptorSupplier
      extends PerturbationServiceBaseDescriptorSupplier {
    PerturbationServiceFileDescriptorSupplier() {}
  }

  private static final class PerturbationServiceMethodDescriptorSupplier
      extends PerturbationServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    PerturbationServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (PerturbationServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new PerturbationServiceFileDescriptorSupplier())
              .addMethod(getPerturbMethod())
              .addMethod(getGenerateMethod())
              .build();
        }
      }
    }
    return result;
  }
}
