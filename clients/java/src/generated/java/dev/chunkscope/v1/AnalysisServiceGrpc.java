package dev.chunkscope.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
 * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
 * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
 * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
 * Every value says what it is (`definition`), which samples it used (seeded subsampling is
 * reported) and how long it took. Requests beyond the server's limits are refused with
 * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
 * the definitions, defaults and a worked example.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class AnalysisServiceGrpc {

  private AnalysisServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "chunkscope.v1.AnalysisService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.CompareRepresentationsRequest,
      dev.chunkscope.v1.CompareRepresentationsResponse> getCompareRepresentationsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CompareRepresentations",
      requestType = dev.chunkscope.v1.CompareRepresentationsRequest.class,
      responseType = dev.chunkscope.v1.CompareRepresentationsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.CompareRepresentationsRequest,
      dev.chunkscope.v1.CompareRepresentationsResponse> getCompareRepresentationsMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.CompareRepresentationsRequest, dev.chunkscope.v1.CompareRepresentationsResponse> getCompareRepresentationsMethod;
    if ((getCompareRepresentationsMethod = AnalysisServiceGrpc.getCompareRepresentationsMethod) == null) {
      synchronized (AnalysisServiceGrpc.class) {
        if ((getCompareRepresentationsMethod = AnalysisServiceGrpc.getCompareRepresentationsMethod) == null) {
          AnalysisServiceGrpc.getCompareRepresentationsMethod = getCompareRepresentationsMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.CompareRepresentationsRequest, dev.chunkscope.v1.CompareRepresentationsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CompareRepresentations"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.CompareRepresentationsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.CompareRepresentationsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new AnalysisServiceMethodDescriptorSupplier("CompareRepresentations"))
              .build();
        }
      }
    }
    return getCompareRepresentationsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.LayerSimilarityRequest,
      dev.chunkscope.v1.LayerSimilarityResponse> getLayerSimilarityMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "LayerSimilarity",
      requestType = dev.chunkscope.v1.LayerSimilarityRequest.class,
      responseType = dev.chunkscope.v1.LayerSimilarityResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.LayerSimilarityRequest,
      dev.chunkscope.v1.LayerSimilarityResponse> getLayerSimilarityMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.LayerSimilarityRequest, dev.chunkscope.v1.LayerSimilarityResponse> getLayerSimilarityMethod;
    if ((getLayerSimilarityMethod = AnalysisServiceGrpc.getLayerSimilarityMethod) == null) {
      synchronized (AnalysisServiceGrpc.class) {
        if ((getLayerSimilarityMethod = AnalysisServiceGrpc.getLayerSimilarityMethod) == null) {
          AnalysisServiceGrpc.getLayerSimilarityMethod = getLayerSimilarityMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.LayerSimilarityRequest, dev.chunkscope.v1.LayerSimilarityResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "LayerSimilarity"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.LayerSimilarityRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.LayerSimilarityResponse.getDefaultInstance()))
              .setSchemaDescriptor(new AnalysisServiceMethodDescriptorSupplier("LayerSimilarity"))
              .build();
        }
      }
    }
    return getLayerSimilarityMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ConnectionCostRequest,
      dev.chunkscope.v1.ConnectionCostResponse> getConnectionCostMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ConnectionCost",
      requestType = dev.chunkscope.v1.ConnectionCostRequest.class,
      responseType = dev.chunkscope.v1.ConnectionCostResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ConnectionCostRequest,
      dev.chunkscope.v1.ConnectionCostResponse> getConnectionCostMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ConnectionCostRequest, dev.chunkscope.v1.ConnectionCostResponse> getConnectionCostMethod;
    if ((getConnectionCostMethod = AnalysisServiceGrpc.getConnectionCostMethod) == null) {
      synchronized (AnalysisServiceGrpc.class) {
        if ((getConnectionCostMethod = AnalysisServiceGrpc.getConnectionCostMethod) == null) {
          AnalysisServiceGrpc.getConnectionCostMethod = getConnectionCostMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ConnectionCostRequest, dev.chunkscope.v1.ConnectionCostResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ConnectionCost"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ConnectionCostRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ConnectionCostResponse.getDefaultInstance()))
              .setSchemaDescriptor(new AnalysisServiceMethodDescriptorSupplier("ConnectionCost"))
              .build();
        }
      }
    }
    return getConnectionCostMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.OptimizeNeuronLayoutRequest,
      dev.chunkscope.v1.OptimizeNeuronLayoutResponse> getOptimizeNeuronLayoutMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "OptimizeNeuronLayout",
      requestType = dev.chunkscope.v1.OptimizeNeuronLayoutRequest.class,
      responseType = dev.chunkscope.v1.OptimizeNeuronLayoutResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.OptimizeNeuronLayoutRequest,
      dev.chunkscope.v1.OptimizeNeuronLayoutResponse> getOptimizeNeuronLayoutMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.OptimizeNeuronLayoutRequest, dev.chunkscope.v1.OptimizeNeuronLayoutResponse> getOptimizeNeuronLayoutMethod;
    if ((getOptimizeNeuronLayoutMethod = AnalysisServiceGrpc.getOptimizeNeuronLayoutMethod) == null) {
      synchronized (AnalysisServiceGrpc.class) {
        if ((getOptimizeNeuronLayoutMethod = AnalysisServiceGrpc.getOptimizeNeuronLayoutMethod) == null) {
          AnalysisServiceGrpc.getOptimizeNeuronLayoutMethod = getOptimizeNeuronLayoutMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.OptimizeNeuronLayoutRequest, dev.chunkscope.v1.OptimizeNeuronLayoutResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "OptimizeNeuronLayout"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.OptimizeNeuronLayoutRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.OptimizeNeuronLayoutResponse.getDefaultInstance()))
              .setSchemaDescriptor(new AnalysisServiceMethodDescriptorSupplier("OptimizeNeuronLayout"))
              .build();
        }
      }
    }
    return getOptimizeNeuronLayoutMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static AnalysisServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceStub>() {
        @java.lang.Override
        public AnalysisServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new AnalysisServiceStub(channel, callOptions);
        }
      };
    return AnalysisServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static AnalysisServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceBlockingV2Stub>() {
        @java.lang.Override
        public AnalysisServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new AnalysisServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return AnalysisServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static AnalysisServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceBlockingStub>() {
        @java.lang.Override
        public AnalysisServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new AnalysisServiceBlockingStub(channel, callOptions);
        }
      };
    return AnalysisServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static AnalysisServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<AnalysisServiceFutureStub>() {
        @java.lang.Override
        public AnalysisServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new AnalysisServiceFutureStub(channel, callOptions);
        }
      };
    return AnalysisServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
   * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
   * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
   * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
   * Every value says what it is (`definition`), which samples it used (seeded subsampling is
   * reported) and how long it took. Requests beyond the server's limits are refused with
   * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
   * the definitions, defaults and a worked example.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Compares two sets of states with one or more measures. Streams progress while it works; the
     * last message carries the result. Cancelling the call or passing its deadline stops the work
     * between steps. Recommended deadline: seconds (CKA, Procrustes) to minutes (GW, DSA).
     * </pre>
     */
    default void compareRepresentations(dev.chunkscope.v1.CompareRepresentationsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.CompareRepresentationsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCompareRepresentationsMethod(), responseObserver);
    }

    /**
     * <pre>
     * The matrix of one measure between hook points of a model (or between inline layers), and the
     * groups of similar layers; optionally a PNG heatmap. Streams progress, then the result.
     * </pre>
     */
    default void layerSimilarity(dev.chunkscope.v1.LayerSimilarityRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.LayerSimilarityResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getLayerSimilarityMethod(), responseObserver);
    }

    /**
     * <pre>
     * The BIMT connection cost of a network under its current neuron placement.
     * </pre>
     */
    default void connectionCost(dev.chunkscope.v1.ConnectionCostRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ConnectionCostResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getConnectionCostMethod(), responseObserver);
    }

    /**
     * <pre>
     * Reorders neurons within hidden layers to lower the connection cost without changing what the
     * network computes; returns the permutations and the cost before and after.
     * </pre>
     */
    default void optimizeNeuronLayout(dev.chunkscope.v1.OptimizeNeuronLayoutRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.OptimizeNeuronLayoutResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getOptimizeNeuronLayoutMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service AnalysisService.
   * <pre>
   * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
   * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
   * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
   * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
   * Every value says what it is (`definition`), which samples it used (seeded subsampling is
   * reported) and how long it took. Requests beyond the server's limits are refused with
   * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
   * the definitions, defaults and a worked example.
   * </pre>
   */
  public static abstract class AnalysisServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return AnalysisServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service AnalysisService.
   * <pre>
   * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
   * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
   * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
   * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
   * Every value says what it is (`definition`), which samples it used (seeded subsampling is
   * reported) and how long it took. Requests beyond the server's limits are refused with
   * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
   * the definitions, defaults and a worked example.
   * </pre>
   */
  public static final class AnalysisServiceStub
      extends io.grpc.stub.AbstractAsyncStub<AnalysisServiceStub> {
    private AnalysisServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected AnalysisServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new AnalysisServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Compares two sets of states with one or more measures. Streams progress while it works; the
     * last message carries the result. Cancelling the call or passing its deadline stops the work
     * between steps. Recommended deadline: seconds (CKA, Procrustes) to minutes (GW, DSA).
     * </pre>
     */
    public void compareRepresentations(dev.chunkscope.v1.CompareRepresentationsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.CompareRepresentationsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getCompareRepresentationsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * The matrix of one measure between hook points of a model (or between inline layers), and the
     * groups of similar layers; optionally a PNG heatmap. Streams progress, then the result.
     * </pre>
     */
    public void layerSimilarity(dev.chunkscope.v1.LayerSimilarityRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.LayerSimilarityResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getLayerSimilarityMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * The BIMT connection cost of a network under its current neuron placement.
     * </pre>
     */
    public void connectionCost(dev.chunkscope.v1.ConnectionCostRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ConnectionCostResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getConnectionCostMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Reorders neurons within hidden layers to lower the connection cost without changing what the
     * network computes; returns the permutations and the cost before and after.
     * </pre>
     */
    public void optimizeNeuronLayout(dev.chunkscope.v1.OptimizeNeuronLayoutRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.OptimizeNeuronLayoutResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getOptimizeNeuronLayoutMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service AnalysisService.
   * <pre>
   * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
   * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
   * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
   * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
   * Every value says what it is (`definition`), which samples it used (seeded subsampling is
   * reported) and how long it took. Requests beyond the server's limits are refused with
   * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
   * the definitions, defaults and a worked example.
   * </pre>
   */
  public static final class AnalysisServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<AnalysisServiceBlockingV2Stub> {
    private AnalysisServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected AnalysisServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new AnalysisServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Compares two sets of states with one or more measures. Streams progress while it works; the
     * last message carries the result. Cancelling the call or passing its deadline stops the work
     * between steps. Recommended deadline: seconds (CKA, Procrustes) to minutes (GW, DSA).
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.chunkscope.v1.CompareRepresentationsResponse>
        compareRepresentations(dev.chunkscope.v1.CompareRepresentationsRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getCompareRepresentationsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The matrix of one measure between hook points of a model (or between inline layers), and the
     * groups of similar layers; optionally a PNG heatmap. Streams progress, then the result.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.chunkscope.v1.LayerSimilarityResponse>
        layerSimilarity(dev.chunkscope.v1.LayerSimilarityRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getLayerSimilarityMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The BIMT connection cost of a network under its current neuron placement.
     * </pre>
     */
    public dev.chunkscope.v1.ConnectionCostResponse connectionCost(dev.chunkscope.v1.ConnectionCostRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getConnectionCostMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reorders neurons within hidden layers to lower the connection cost without changing what the
     * network computes; returns the permutations and the cost before and after.
     * </pre>
     */
    public dev.chunkscope.v1.OptimizeNeuronLayoutResponse optimizeNeuronLayout(dev.chunkscope.v1.OptimizeNeuronLayoutRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getOptimizeNeuronLayoutMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service AnalysisService.
   * <pre>
   * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
   * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
   * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
   * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
   * Every value says what it is (`definition`), which samples it used (seeded subsampling is
   * reported) and how long it took. Requests beyond the server's limits are refused with
   * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
   * the definitions, defaults and a worked example.
   * </pre>
   */
  public static final class AnalysisServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<AnalysisServiceBlockingStub> {
    private AnalysisServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected AnalysisServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new AnalysisServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Compares two sets of states with one or more measures. Streams progress while it works; the
     * last message carries the result. Cancelling the call or passing its deadline stops the work
     * between steps. Recommended deadline: seconds (CKA, Procrustes) to minutes (GW, DSA).
     * </pre>
     */
    public java.util.Iterator<dev.chunkscope.v1.CompareRepresentationsResponse> compareRepresentations(
        dev.chunkscope.v1.CompareRepresentationsRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getCompareRepresentationsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The matrix of one measure between hook points of a model (or between inline layers), and the
     * groups of similar layers; optionally a PNG heatmap. Streams progress, then the result.
     * </pre>
     */
    public java.util.Iterator<dev.chunkscope.v1.LayerSimilarityResponse> layerSimilarity(
        dev.chunkscope.v1.LayerSimilarityRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getLayerSimilarityMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The BIMT connection cost of a network under its current neuron placement.
     * </pre>
     */
    public dev.chunkscope.v1.ConnectionCostResponse connectionCost(dev.chunkscope.v1.ConnectionCostRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getConnectionCostMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reorders neurons within hidden layers to lower the connection cost without changing what the
     * network computes; returns the permutations and the cost before and after.
     * </pre>
     */
    public dev.chunkscope.v1.OptimizeNeuronLayoutResponse optimizeNeuronLayout(dev.chunkscope.v1.OptimizeNeuronLayoutRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getOptimizeNeuronLayoutMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service AnalysisService.
   * <pre>
   * Compares representations rather than chunking them (docs/METHODS.md section 6): linear CKA,
   * Procrustes shape distance, Gromov-Wasserstein distance and Dynamical Similarity Analysis between
   * two sets of hidden states; layer-by-layer similarity maps with groups of similar layers; and the
   * BIMT connection cost of a network with the function-preserving neuron swaps that lower it.
   * Every value says what it is (`definition`), which samples it used (seeded subsampling is
   * reported) and how long it took. Requests beyond the server's limits are refused with
   * RESOURCE_EXHAUSTED; bad requests with INVALID_ARGUMENT naming the field. docs/ANALYSIS.md has
   * the definitions, defaults and a worked example.
   * </pre>
   */
  public static final class AnalysisServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<AnalysisServiceFutureStub> {
    private AnalysisServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected AnalysisServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new AnalysisServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * The BIMT connection cost of a network under its current neuron placement.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.ConnectionCostResponse> connectionCost(
        dev.chunkscope.v1.ConnectionCostRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getConnectionCostMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Reorders neurons within hidden layers to lower the connection cost without changing what the
     * network computes; returns the permutations and the cost before and after.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.OptimizeNeuronLayoutResponse> optimizeNeuronLayout(
        dev.chunkscope.v1.OptimizeNeuronLayoutRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getOptimizeNeuronLayoutMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_COMPARE_REPRESENTATIONS = 0;
  private static final int METHODID_LAYER_SIMILARITY = 1;
  private static final int METHODID_CONNECTION_COST = 2;
  private static final int METHODID_OPTIMIZE_NEURON_LAYOUT = 3;

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
        case METHODID_COMPARE_REPRESENTATIONS:
          serviceImpl.compareRepresentations((dev.chunkscope.v1.CompareRepresentationsRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.CompareRepresentationsResponse>) responseObserver);
          break;
        case METHODID_LAYER_SIMILARITY:
          serviceImpl.layerSimilarity((dev.chunkscope.v1.LayerSimilarityRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.LayerSimilarityResponse>) responseObserver);
          break;
        case METHODID_CONNECTION_COST:
          serviceImpl.connectionCost((dev.chunkscope.v1.ConnectionCostRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ConnectionCostResponse>) responseObserver);
          break;
        case METHODID_OPTIMIZE_NEURON_LAYOUT:
          serviceImpl.optimizeNeuronLayout((dev.chunkscope.v1.OptimizeNeuronLayoutRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.OptimizeNeuronLayoutResponse>) responseObserver);
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
          getCompareRepresentationsMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.CompareRepresentationsRequest,
              dev.chunkscope.v1.CompareRepresentationsResponse>(
                service, METHODID_COMPARE_REPRESENTATIONS)))
        .addMethod(
          getLayerSimilarityMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.LayerSimilarityRequest,
              dev.chunkscope.v1.LayerSimilarityResponse>(
                service, METHODID_LAYER_SIMILARITY)))
        .addMethod(
          getConnectionCostMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.ConnectionCostRequest,
              dev.chunkscope.v1.ConnectionCostResponse>(
                service, METHODID_CONNECTION_COST)))
        .addMethod(
          getOptimizeNeuronLayoutMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.OptimizeNeuronLayoutRequest,
              dev.chunkscope.v1.OptimizeNeuronLayoutResponse>(
                service, METHODID_OPTIMIZE_NEURON_LAYOUT)))
        .build();
  }

  private static abstract class AnalysisServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    AnalysisServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.chunkscope.v1.AnalysisProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("AnalysisService");
    }
  }

  private static final class AnalysisServiceFileDescriptorSupplier
      extends AnalysisServiceBaseDescriptorSupplier {
    AnalysisServiceFileDescriptorSupplier() {}
  }

  private static final class AnalysisServiceMethodDescriptorSupplier
      extends AnalysisServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    AnalysisServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (AnalysisServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new AnalysisServiceFileDescriptorSupplier())
              .addMethod(getCompareRepresentationsMethod())
              .addMethod(getLayerSimilarityMethod())
              .addMethod(getConnectionCostMethod())
              .addMethod(getOptimizeNeuronLayoutMethod())
              .build();
        }
      }
    }
    return result;
  }
}
