package dev.chunkscope.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
 * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
 * and one method; using it with anything else is refused. Dictionaries are stored in the
 * server's data directory as chunks.safetensors + manifest.json, written atomically.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class DictionaryServiceGrpc {

  private DictionaryServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "chunkscope.v1.DictionaryService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ExtractDictionaryRequest,
      dev.chunkscope.v1.ExtractDictionaryResponse> getExtractDictionaryMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ExtractDictionary",
      requestType = dev.chunkscope.v1.ExtractDictionaryRequest.class,
      responseType = dev.chunkscope.v1.ExtractDictionaryResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ExtractDictionaryRequest,
      dev.chunkscope.v1.ExtractDictionaryResponse> getExtractDictionaryMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ExtractDictionaryRequest, dev.chunkscope.v1.ExtractDictionaryResponse> getExtractDictionaryMethod;
    if ((getExtractDictionaryMethod = DictionaryServiceGrpc.getExtractDictionaryMethod) == null) {
      synchronized (DictionaryServiceGrpc.class) {
        if ((getExtractDictionaryMethod = DictionaryServiceGrpc.getExtractDictionaryMethod) == null) {
          DictionaryServiceGrpc.getExtractDictionaryMethod = getExtractDictionaryMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ExtractDictionaryRequest, dev.chunkscope.v1.ExtractDictionaryResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ExtractDictionary"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ExtractDictionaryRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ExtractDictionaryResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DictionaryServiceMethodDescriptorSupplier("ExtractDictionary"))
              .build();
        }
      }
    }
    return getExtractDictionaryMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.GetDictionaryRequest,
      dev.chunkscope.v1.GetDictionaryResponse> getGetDictionaryMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetDictionary",
      requestType = dev.chunkscope.v1.GetDictionaryRequest.class,
      responseType = dev.chunkscope.v1.GetDictionaryResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.GetDictionaryRequest,
      dev.chunkscope.v1.GetDictionaryResponse> getGetDictionaryMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.GetDictionaryRequest, dev.chunkscope.v1.GetDictionaryResponse> getGetDictionaryMethod;
    if ((getGetDictionaryMethod = DictionaryServiceGrpc.getGetDictionaryMethod) == null) {
      synchronized (DictionaryServiceGrpc.class) {
        if ((getGetDictionaryMethod = DictionaryServiceGrpc.getGetDictionaryMethod) == null) {
          DictionaryServiceGrpc.getGetDictionaryMethod = getGetDictionaryMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.GetDictionaryRequest, dev.chunkscope.v1.GetDictionaryResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetDictionary"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetDictionaryRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetDictionaryResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DictionaryServiceMethodDescriptorSupplier("GetDictionary"))
              .build();
        }
      }
    }
    return getGetDictionaryMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ListDictionariesRequest,
      dev.chunkscope.v1.ListDictionariesResponse> getListDictionariesMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListDictionaries",
      requestType = dev.chunkscope.v1.ListDictionariesRequest.class,
      responseType = dev.chunkscope.v1.ListDictionariesResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ListDictionariesRequest,
      dev.chunkscope.v1.ListDictionariesResponse> getListDictionariesMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ListDictionariesRequest, dev.chunkscope.v1.ListDictionariesResponse> getListDictionariesMethod;
    if ((getListDictionariesMethod = DictionaryServiceGrpc.getListDictionariesMethod) == null) {
      synchronized (DictionaryServiceGrpc.class) {
        if ((getListDictionariesMethod = DictionaryServiceGrpc.getListDictionariesMethod) == null) {
          DictionaryServiceGrpc.getListDictionariesMethod = getListDictionariesMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ListDictionariesRequest, dev.chunkscope.v1.ListDictionariesResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListDictionaries"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListDictionariesRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListDictionariesResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DictionaryServiceMethodDescriptorSupplier("ListDictionaries"))
              .build();
        }
      }
    }
    return getListDictionariesMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.DeleteDictionaryRequest,
      dev.chunkscope.v1.DeleteDictionaryResponse> getDeleteDictionaryMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeleteDictionary",
      requestType = dev.chunkscope.v1.DeleteDictionaryRequest.class,
      responseType = dev.chunkscope.v1.DeleteDictionaryResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.DeleteDictionaryRequest,
      dev.chunkscope.v1.DeleteDictionaryResponse> getDeleteDictionaryMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.DeleteDictionaryRequest, dev.chunkscope.v1.DeleteDictionaryResponse> getDeleteDictionaryMethod;
    if ((getDeleteDictionaryMethod = DictionaryServiceGrpc.getDeleteDictionaryMethod) == null) {
      synchronized (DictionaryServiceGrpc.class) {
        if ((getDeleteDictionaryMethod = DictionaryServiceGrpc.getDeleteDictionaryMethod) == null) {
          DictionaryServiceGrpc.getDeleteDictionaryMethod = getDeleteDictionaryMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.DeleteDictionaryRequest, dev.chunkscope.v1.DeleteDictionaryResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeleteDictionary"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DeleteDictionaryRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DeleteDictionaryResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DictionaryServiceMethodDescriptorSupplier("DeleteDictionary"))
              .build();
        }
      }
    }
    return getDeleteDictionaryMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ExportDictionaryRequest,
      dev.chunkscope.v1.ExportDictionaryResponse> getExportDictionaryMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ExportDictionary",
      requestType = dev.chunkscope.v1.ExportDictionaryRequest.class,
      responseType = dev.chunkscope.v1.ExportDictionaryResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ExportDictionaryRequest,
      dev.chunkscope.v1.ExportDictionaryResponse> getExportDictionaryMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ExportDictionaryRequest, dev.chunkscope.v1.ExportDictionaryResponse> getExportDictionaryMethod;
    if ((getExportDictionaryMethod = DictionaryServiceGrpc.getExportDictionaryMethod) == null) {
      synchronized (DictionaryServiceGrpc.class) {
        if ((getExportDictionaryMethod = DictionaryServiceGrpc.getExportDictionaryMethod) == null) {
          DictionaryServiceGrpc.getExportDictionaryMethod = getExportDictionaryMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ExportDictionaryRequest, dev.chunkscope.v1.ExportDictionaryResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ExportDictionary"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ExportDictionaryRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ExportDictionaryResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DictionaryServiceMethodDescriptorSupplier("ExportDictionary"))
              .build();
        }
      }
    }
    return getExportDictionaryMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ImportDictionaryRequest,
      dev.chunkscope.v1.ImportDictionaryResponse> getImportDictionaryMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ImportDictionary",
      requestType = dev.chunkscope.v1.ImportDictionaryRequest.class,
      responseType = dev.chunkscope.v1.ImportDictionaryResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.CLIENT_STREAMING)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ImportDictionaryRequest,
      dev.chunkscope.v1.ImportDictionaryResponse> getImportDictionaryMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ImportDictionaryRequest, dev.chunkscope.v1.ImportDictionaryResponse> getImportDictionaryMethod;
    if ((getImportDictionaryMethod = DictionaryServiceGrpc.getImportDictionaryMethod) == null) {
      synchronized (DictionaryServiceGrpc.class) {
        if ((getImportDictionaryMethod = DictionaryServiceGrpc.getImportDictionaryMethod) == null) {
          DictionaryServiceGrpc.getImportDictionaryMethod = getImportDictionaryMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ImportDictionaryRequest, dev.chunkscope.v1.ImportDictionaryResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.CLIENT_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ImportDictionary"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ImportDictionaryRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ImportDictionaryResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DictionaryServiceMethodDescriptorSupplier("ImportDictionary"))
              .build();
        }
      }
    }
    return getImportDictionaryMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static DictionaryServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceStub>() {
        @java.lang.Override
        public DictionaryServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DictionaryServiceStub(channel, callOptions);
        }
      };
    return DictionaryServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static DictionaryServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceBlockingV2Stub>() {
        @java.lang.Override
        public DictionaryServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DictionaryServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return DictionaryServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static DictionaryServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceBlockingStub>() {
        @java.lang.Override
        public DictionaryServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DictionaryServiceBlockingStub(channel, callOptions);
        }
      };
    return DictionaryServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static DictionaryServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DictionaryServiceFutureStub>() {
        @java.lang.Override
        public DictionaryServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DictionaryServiceFutureStub(channel, callOptions);
        }
      };
    return DictionaryServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
   * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
   * and one method; using it with anything else is refused. Dictionaries are stored in the
   * server's data directory as chunks.safetensors + manifest.json, written atomically.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Runs an extraction and streams its progress; the last message carries the stored
     * dictionaries (one per hook point). Cancelling the call or passing its deadline stops the job
     * between batches and stores nothing. Recommended deadline: minutes, by corpus size.
     * </pre>
     */
    default void extractDictionary(dev.chunkscope.v1.ExtractDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ExtractDictionaryResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getExtractDictionaryMethod(), responseObserver);
    }

    /**
     * <pre>
     * One dictionary with its entries; prototypes only when asked for.
     * </pre>
     */
    default void getDictionary(dev.chunkscope.v1.GetDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetDictionaryResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetDictionaryMethod(), responseObserver);
    }

    /**
     * <pre>
     * Stored dictionaries, newest first, optionally only those of one model.
     * </pre>
     */
    default void listDictionaries(dev.chunkscope.v1.ListDictionariesRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListDictionariesResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListDictionariesMethod(), responseObserver);
    }

    /**
     * <pre>
     * Deletes a stored dictionary.
     * </pre>
     */
    default void deleteDictionary(dev.chunkscope.v1.DeleteDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeleteDictionaryResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeleteDictionaryMethod(), responseObserver);
    }

    /**
     * <pre>
     * Streams a dictionary as a portable archive (a tar of manifest.json and chunks.safetensors).
     * </pre>
     */
    default void exportDictionary(dev.chunkscope.v1.ExportDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ExportDictionaryResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getExportDictionaryMethod(), responseObserver);
    }

    /**
     * <pre>
     * Stores a dictionary from an archive made by ExportDictionary, after validating it.
     * </pre>
     */
    default io.grpc.stub.StreamObserver<dev.chunkscope.v1.ImportDictionaryRequest> importDictionary(
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ImportDictionaryResponse> responseObserver) {
      return io.grpc.stub.ServerCalls.asyncUnimplementedStreamingCall(getImportDictionaryMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service DictionaryService.
   * <pre>
   * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
   * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
   * and one method; using it with anything else is refused. Dictionaries are stored in the
   * server's data directory as chunks.safetensors + manifest.json, written atomically.
   * </pre>
   */
  public static abstract class DictionaryServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return DictionaryServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service DictionaryService.
   * <pre>
   * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
   * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
   * and one method; using it with anything else is refused. Dictionaries are stored in the
   * server's data directory as chunks.safetensors + manifest.json, written atomically.
   * </pre>
   */
  public static final class DictionaryServiceStub
      extends io.grpc.stub.AbstractAsyncStub<DictionaryServiceStub> {
    private DictionaryServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DictionaryServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DictionaryServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Runs an extraction and streams its progress; the last message carries the stored
     * dictionaries (one per hook point). Cancelling the call or passing its deadline stops the job
     * between batches and stores nothing. Recommended deadline: minutes, by corpus size.
     * </pre>
     */
    public void extractDictionary(dev.chunkscope.v1.ExtractDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ExtractDictionaryResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getExtractDictionaryMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * One dictionary with its entries; prototypes only when asked for.
     * </pre>
     */
    public void getDictionary(dev.chunkscope.v1.GetDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetDictionaryResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetDictionaryMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Stored dictionaries, newest first, optionally only those of one model.
     * </pre>
     */
    public void listDictionaries(dev.chunkscope.v1.ListDictionariesRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListDictionariesResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListDictionariesMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Deletes a stored dictionary.
     * </pre>
     */
    public void deleteDictionary(dev.chunkscope.v1.DeleteDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeleteDictionaryResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeleteDictionaryMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Streams a dictionary as a portable archive (a tar of manifest.json and chunks.safetensors).
     * </pre>
     */
    public void exportDictionary(dev.chunkscope.v1.ExportDictionaryRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ExportDictionaryResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getExportDictionaryMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Stores a dictionary from an archive made by ExportDictionary, after validating it.
     * </pre>
     */
    public io.grpc.stub.StreamObserver<dev.chunkscope.v1.ImportDictionaryRequest> importDictionary(
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ImportDictionaryResponse> responseObserver) {
      return io.grpc.stub.ClientCalls.asyncClientStreamingCall(
          getChannel().newCall(getImportDictionaryMethod(), getCallOptions()), responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service DictionaryService.
   * <pre>
   * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
   * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
   * and one method; using it with anything else is refused. Dictionaries are stored in the
   * server's data directory as chunks.safetensors + manifest.json, written atomically.
   * </pre>
   */
  public static final class DictionaryServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<DictionaryServiceBlockingV2Stub> {
    private DictionaryServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DictionaryServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DictionaryServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Runs an extraction and streams its progress; the last message carries the stored
     * dictionaries (one per hook point). Cancelling the call or passing its deadline stops the job
     * between batches and stores nothing. Recommended deadline: minutes, by corpus size.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.chunkscope.v1.ExtractDictionaryResponse>
        extractDictionary(dev.chunkscope.v1.ExtractDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getExtractDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * One dictionary with its entries; prototypes only when asked for.
     * </pre>
     */
    public dev.chunkscope.v1.GetDictionaryResponse getDictionary(dev.chunkscope.v1.GetDictionaryRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stored dictionaries, newest first, optionally only those of one model.
     * </pre>
     */
    public dev.chunkscope.v1.ListDictionariesResponse listDictionaries(dev.chunkscope.v1.ListDictionariesRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListDictionariesMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a stored dictionary.
     * </pre>
     */
    public dev.chunkscope.v1.DeleteDictionaryResponse deleteDictionary(dev.chunkscope.v1.DeleteDictionaryRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDeleteDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams a dictionary as a portable archive (a tar of manifest.json and chunks.safetensors).
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.chunkscope.v1.ExportDictionaryResponse>
        exportDictionary(dev.chunkscope.v1.ExportDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getExportDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stores a dictionary from an archive made by ExportDictionary, after validating it.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<dev.chunkscope.v1.ImportDictionaryRequest, dev.chunkscope.v1.ImportDictionaryResponse>
        importDictionary() {
      return io.grpc.stub.ClientCalls.blockingClientStreamingCall(
          getChannel(), getImportDictionaryMethod(), getCallOptions());
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service DictionaryService.
   * <pre>
   * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
   * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
   * and one method; using it with anything else is refused. Dictionaries are stored in the
   * server's data directory as chunks.safetensors + manifest.json, written atomically.
   * </pre>
   */
  public static final class DictionaryServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<DictionaryServiceBlockingStub> {
    private DictionaryServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DictionaryServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DictionaryServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Runs an extraction and streams its progress; the last message carries the stored
     * dictionaries (one per hook point). Cancelling the call or passing its deadline stops the job
     * between batches and stores nothing. Recommended deadline: minutes, by corpus size.
     * </pre>
     */
    public java.util.Iterator<dev.chunkscope.v1.ExtractDictionaryResponse> extractDictionary(
        dev.chunkscope.v1.ExtractDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getExtractDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * One dictionary with its entries; prototypes only when asked for.
     * </pre>
     */
    public dev.chunkscope.v1.GetDictionaryResponse getDictionary(dev.chunkscope.v1.GetDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stored dictionaries, newest first, optionally only those of one model.
     * </pre>
     */
    public dev.chunkscope.v1.ListDictionariesResponse listDictionaries(dev.chunkscope.v1.ListDictionariesRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListDictionariesMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a stored dictionary.
     * </pre>
     */
    public dev.chunkscope.v1.DeleteDictionaryResponse deleteDictionary(dev.chunkscope.v1.DeleteDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeleteDictionaryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams a dictionary as a portable archive (a tar of manifest.json and chunks.safetensors).
     * </pre>
     */
    public java.util.Iterator<dev.chunkscope.v1.ExportDictionaryResponse> exportDictionary(
        dev.chunkscope.v1.ExportDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getExportDictionaryMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service DictionaryService.
   * <pre>
   * Extracts chunk dictionaries from a model's hidden states and manages the stored ones.
   * A dictionary belongs to one model (name and content hash), one hook point, one compute dtype
   * and one method; using it with anything else is refused. Dictionaries are stored in the
   * server's data directory as chunks.safetensors + manifest.json, written atomically.
   * </pre>
   */
  public static final class DictionaryServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<DictionaryServiceFutureStub> {
    private DictionaryServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DictionaryServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DictionaryServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * One dictionary with its entries; prototypes only when asked for.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.GetDictionaryResponse> getDictionary(
        dev.chunkscope.v1.GetDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetDictionaryMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Stored dictionaries, newest first, optionally only those of one model.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.ListDictionariesResponse> listDictionaries(
        dev.chunkscope.v1.ListDictionariesRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListDictionariesMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Deletes a stored dictionary.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.DeleteDictionaryResponse> deleteDictionary(
        dev.chunkscope.v1.DeleteDictionaryRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeleteDictionaryMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_EXTRACT_DICTIONARY = 0;
  private static final int METHODID_GET_DICTIONARY = 1;
  private static final int METHODID_LIST_DICTIONARIES = 2;
  private static final int METHODID_DELETE_DICTIONARY = 3;
  private static final int METHODID_EXPORT_DICTIONARY = 4;
  private static final int METHODID_IMPORT_DICTIONARY = 5;

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
        case METHODID_EXTRACT_DICTIONARY:
          serviceImpl.extractDictionary((dev.chunkscope.v1.ExtractDictionaryRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ExtractDictionaryResponse>) responseObserver);
          break;
        case METHODID_GET_DICTIONARY:
          serviceImpl.getDictionary((dev.chunkscope.v1.GetDictionaryRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetDictionaryResponse>) responseObserver);
          break;
        case METHODID_LIST_DICTIONARIES:
          serviceImpl.listDictionaries((dev.chunkscope.v1.ListDictionariesRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListDictionariesResponse>) responseObserver);
          break;
        case METHODID_DELETE_DICTIONARY:
          serviceImpl.deleteDictionary((dev.chunkscope.v1.DeleteDictionaryRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeleteDictionaryResponse>) responseObserver);
          break;
        case METHODID_EXPORT_DICTIONARY:
          serviceImpl.exportDictionary((dev.chunkscope.v1.ExportDictionaryRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ExportDictionaryResponse>) responseObserver);
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
        case METHODID_IMPORT_DICTIONARY:
          return (io.grpc.stub.StreamObserver<Req>) serviceImpl.importDictionary(
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ImportDictionaryResponse>) responseObserver);
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getExtractDictionaryMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.ExtractDictionaryRequest,
              dev.chunkscope.v1.ExtractDictionaryResponse>(
                service, METHODID_EXTRACT_DICTIONARY)))
        .addMethod(
          getGetDictionaryMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.GetDictionaryRequest,
              dev.chunkscope.v1.GetDictionaryResponse>(
                service, METHODID_GET_DICTIONARY)))
        .addMethod(
          getListDictionariesMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.ListDictionariesRequest,
              dev.chunkscope.v1.ListDictionariesResponse>(
                service, METHODID_LIST_DICTIONARIES)))
        .addMethod(
          getDeleteDictionaryMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.DeleteDictionaryRequest,
              dev.chunkscope.v1.DeleteDictionaryResponse>(
                service, METHODID_DELETE_DICTIONARY)))
        .addMethod(
          getExportDictionaryMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.ExportDictionaryRequest,
              dev.chunkscope.v1.ExportDictionaryResponse>(
                service, METHODID_EXPORT_DICTIONARY)))
        .addMethod(
          getImportDictionaryMethod(),
          io.grpc.stub.ServerCalls.asyncClientStreamingCall(
            new MethodHandlers<
              dev.chunkscope.v1.ImportDictionaryRequest,
              dev.chunkscope.v1.ImportDictionaryResponse>(
                service, METHODID_IMPORT_DICTIONARY)))
        .build();
  }

  private static abstract class DictionaryServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    DictionaryServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.chunkscope.v1.DictionariesProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("DictionaryService");
    }
  }

  private static final class DictionaryServiceFileDescriptorSupplier
      extends DictionaryServiceBaseDescriptorSupplier {
    DictionaryServiceFileDescriptorSupplier() {}
  }

  private static final class DictionaryServiceMethodDescriptorSupplier
      extends DictionaryServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    DictionaryServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (DictionaryServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new DictionaryServiceFileDescriptorSupplier())
              .addMethod(getExtractDictionaryMethod())
              .addMethod(getGetDictionaryMethod())
              .addMethod(getListDictionariesMethod())
              .addMethod(getDeleteDictionaryMethod())
              .addMethod(getExportDictionaryMethod())
              .addMethod(getImportDictionaryMethod())
              .build();
        }
      }
    }
    return result;
  }
}
