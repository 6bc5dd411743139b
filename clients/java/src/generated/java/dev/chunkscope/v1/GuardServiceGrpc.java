package dev.chunkscope.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Policies over stored dictionaries, and a guard call that checks texts against one.
 * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
 * readable, and a Check names the version it used. Admins manage policies (every change is
 * audited); monitors may read them and call Check.
 * Check answers a verdict only when it could check: any failure (unknown policy, model not
 * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
 * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
 * caller's choice (docs/GUARD.md).
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class GuardServiceGrpc {

  private GuardServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "chunkscope.v1.GuardService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.PutPolicyRequest,
      dev.chunkscope.v1.PutPolicyResponse> getPutPolicyMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "PutPolicy",
      requestType = dev.chunkscope.v1.PutPolicyRequest.class,
      responseType = dev.chunkscope.v1.PutPolicyResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.PutPolicyRequest,
      dev.chunkscope.v1.PutPolicyResponse> getPutPolicyMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.PutPolicyRequest, dev.chunkscope.v1.PutPolicyResponse> getPutPolicyMethod;
    if ((getPutPolicyMethod = GuardServiceGrpc.getPutPolicyMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getPutPolicyMethod = GuardServiceGrpc.getPutPolicyMethod) == null) {
          GuardServiceGrpc.getPutPolicyMethod = getPutPolicyMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.PutPolicyRequest, dev.chunkscope.v1.PutPolicyResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "PutPolicy"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.PutPolicyRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.PutPolicyResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("PutPolicy"))
              .build();
        }
      }
    }
    return getPutPolicyMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.GetPolicyRequest,
      dev.chunkscope.v1.GetPolicyResponse> getGetPolicyMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetPolicy",
      requestType = dev.chunkscope.v1.GetPolicyRequest.class,
      responseType = dev.chunkscope.v1.GetPolicyResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.GetPolicyRequest,
      dev.chunkscope.v1.GetPolicyResponse> getGetPolicyMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.GetPolicyRequest, dev.chunkscope.v1.GetPolicyResponse> getGetPolicyMethod;
    if ((getGetPolicyMethod = GuardServiceGrpc.getGetPolicyMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getGetPolicyMethod = GuardServiceGrpc.getGetPolicyMethod) == null) {
          GuardServiceGrpc.getGetPolicyMethod = getGetPolicyMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.GetPolicyRequest, dev.chunkscope.v1.GetPolicyResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetPolicy"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetPolicyRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetPolicyResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("GetPolicy"))
              .build();
        }
      }
    }
    return getGetPolicyMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ListPoliciesRequest,
      dev.chunkscope.v1.ListPoliciesResponse> getListPoliciesMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListPolicies",
      requestType = dev.chunkscope.v1.ListPoliciesRequest.class,
      responseType = dev.chunkscope.v1.ListPoliciesResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ListPoliciesRequest,
      dev.chunkscope.v1.ListPoliciesResponse> getListPoliciesMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ListPoliciesRequest, dev.chunkscope.v1.ListPoliciesResponse> getListPoliciesMethod;
    if ((getListPoliciesMethod = GuardServiceGrpc.getListPoliciesMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getListPoliciesMethod = GuardServiceGrpc.getListPoliciesMethod) == null) {
          GuardServiceGrpc.getListPoliciesMethod = getListPoliciesMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ListPoliciesRequest, dev.chunkscope.v1.ListPoliciesResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListPolicies"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListPoliciesRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListPoliciesResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("ListPolicies"))
              .build();
        }
      }
    }
    return getListPoliciesMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.DeletePolicyRequest,
      dev.chunkscope.v1.DeletePolicyResponse> getDeletePolicyMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeletePolicy",
      requestType = dev.chunkscope.v1.DeletePolicyRequest.class,
      responseType = dev.chunkscope.v1.DeletePolicyResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.DeletePolicyRequest,
      dev.chunkscope.v1.DeletePolicyResponse> getDeletePolicyMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.DeletePolicyRequest, dev.chunkscope.v1.DeletePolicyResponse> getDeletePolicyMethod;
    if ((getDeletePolicyMethod = GuardServiceGrpc.getDeletePolicyMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getDeletePolicyMethod = GuardServiceGrpc.getDeletePolicyMethod) == null) {
          GuardServiceGrpc.getDeletePolicyMethod = getDeletePolicyMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.DeletePolicyRequest, dev.chunkscope.v1.DeletePolicyResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeletePolicy"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DeletePolicyRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DeletePolicyResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("DeletePolicy"))
              .build();
        }
      }
    }
    return getDeletePolicyMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.CheckRequest,
      dev.chunkscope.v1.CheckResponse> getCheckMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Check",
      requestType = dev.chunkscope.v1.CheckRequest.class,
      responseType = dev.chunkscope.v1.CheckResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.CheckRequest,
      dev.chunkscope.v1.CheckResponse> getCheckMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.CheckRequest, dev.chunkscope.v1.CheckResponse> getCheckMethod;
    if ((getCheckMethod = GuardServiceGrpc.getCheckMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getCheckMethod = GuardServiceGrpc.getCheckMethod) == null) {
          GuardServiceGrpc.getCheckMethod = getCheckMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.CheckRequest, dev.chunkscope.v1.CheckResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Check"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.CheckRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.CheckResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("Check"))
              .build();
        }
      }
    }
    return getCheckMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.PutPresetRequest,
      dev.chunkscope.v1.PutPresetResponse> getPutPresetMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "PutPreset",
      requestType = dev.chunkscope.v1.PutPresetRequest.class,
      responseType = dev.chunkscope.v1.PutPresetResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.PutPresetRequest,
      dev.chunkscope.v1.PutPresetResponse> getPutPresetMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.PutPresetRequest, dev.chunkscope.v1.PutPresetResponse> getPutPresetMethod;
    if ((getPutPresetMethod = GuardServiceGrpc.getPutPresetMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getPutPresetMethod = GuardServiceGrpc.getPutPresetMethod) == null) {
          GuardServiceGrpc.getPutPresetMethod = getPutPresetMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.PutPresetRequest, dev.chunkscope.v1.PutPresetResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "PutPreset"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.PutPresetRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.PutPresetResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("PutPreset"))
              .build();
        }
      }
    }
    return getPutPresetMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.GetPresetRequest,
      dev.chunkscope.v1.GetPresetResponse> getGetPresetMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetPreset",
      requestType = dev.chunkscope.v1.GetPresetRequest.class,
      responseType = dev.chunkscope.v1.GetPresetResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.GetPresetRequest,
      dev.chunkscope.v1.GetPresetResponse> getGetPresetMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.GetPresetRequest, dev.chunkscope.v1.GetPresetResponse> getGetPresetMethod;
    if ((getGetPresetMethod = GuardServiceGrpc.getGetPresetMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getGetPresetMethod = GuardServiceGrpc.getGetPresetMethod) == null) {
          GuardServiceGrpc.getGetPresetMethod = getGetPresetMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.GetPresetRequest, dev.chunkscope.v1.GetPresetResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetPreset"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetPresetRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.GetPresetResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("GetPreset"))
              .build();
        }
      }
    }
    return getGetPresetMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.ListPresetsRequest,
      dev.chunkscope.v1.ListPresetsResponse> getListPresetsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListPresets",
      requestType = dev.chunkscope.v1.ListPresetsRequest.class,
      responseType = dev.chunkscope.v1.ListPresetsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.ListPresetsRequest,
      dev.chunkscope.v1.ListPresetsResponse> getListPresetsMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.ListPresetsRequest, dev.chunkscope.v1.ListPresetsResponse> getListPresetsMethod;
    if ((getListPresetsMethod = GuardServiceGrpc.getListPresetsMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getListPresetsMethod = GuardServiceGrpc.getListPresetsMethod) == null) {
          GuardServiceGrpc.getListPresetsMethod = getListPresetsMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.ListPresetsRequest, dev.chunkscope.v1.ListPresetsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListPresets"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListPresetsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.ListPresetsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("ListPresets"))
              .build();
        }
      }
    }
    return getListPresetsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.chunkscope.v1.DeletePresetRequest,
      dev.chunkscope.v1.DeletePresetResponse> getDeletePresetMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeletePreset",
      requestType = dev.chunkscope.v1.DeletePresetRequest.class,
      responseType = dev.chunkscope.v1.DeletePresetResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.chunkscope.v1.DeletePresetRequest,
      dev.chunkscope.v1.DeletePresetResponse> getDeletePresetMethod() {
    io.grpc.MethodDescriptor<dev.chunkscope.v1.DeletePresetRequest, dev.chunkscope.v1.DeletePresetResponse> getDeletePresetMethod;
    if ((getDeletePresetMethod = GuardServiceGrpc.getDeletePresetMethod) == null) {
      synchronized (GuardServiceGrpc.class) {
        if ((getDeletePresetMethod = GuardServiceGrpc.getDeletePresetMethod) == null) {
          GuardServiceGrpc.getDeletePresetMethod = getDeletePresetMethod =
              io.grpc.MethodDescriptor.<dev.chunkscope.v1.DeletePresetRequest, dev.chunkscope.v1.DeletePresetResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeletePreset"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DeletePresetRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.chunkscope.v1.DeletePresetResponse.getDefaultInstance()))
              .setSchemaDescriptor(new GuardServiceMethodDescriptorSupplier("DeletePreset"))
              .build();
        }
      }
    }
    return getDeletePresetMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static GuardServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<GuardServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<GuardServiceStub>() {
        @java.lang.Override
        public GuardServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new GuardServiceStub(channel, callOptions);
        }
      };
    return GuardServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static GuardServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<GuardServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<GuardServiceBlockingV2Stub>() {
        @java.lang.Override
        public GuardServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new GuardServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return GuardServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static GuardServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<GuardServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<GuardServiceBlockingStub>() {
        @java.lang.Override
        public GuardServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new GuardServiceBlockingStub(channel, callOptions);
        }
      };
    return GuardServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static GuardServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<GuardServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<GuardServiceFutureStub>() {
        @java.lang.Override
        public GuardServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new GuardServiceFutureStub(channel, callOptions);
        }
      };
    return GuardServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Policies over stored dictionaries, and a guard call that checks texts against one.
   * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
   * readable, and a Check names the version it used. Admins manage policies (every change is
   * audited); monitors may read them and call Check.
   * Check answers a verdict only when it could check: any failure (unknown policy, model not
   * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
   * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
   * caller's choice (docs/GUARD.md).
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Stores a new version of a policy (version 1 when the name is new).
     * </pre>
     */
    default void putPolicy(dev.chunkscope.v1.PutPolicyRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.PutPolicyResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPutPolicyMethod(), responseObserver);
    }

    /**
     * <pre>
     * A policy: its latest version, or a given one.
     * </pre>
     */
    default void getPolicy(dev.chunkscope.v1.GetPolicyRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetPolicyResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetPolicyMethod(), responseObserver);
    }

    /**
     * <pre>
     * The latest version of every policy, or every version of one policy.
     * </pre>
     */
    default void listPolicies(dev.chunkscope.v1.ListPoliciesRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListPoliciesResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListPoliciesMethod(), responseObserver);
    }

    /**
     * <pre>
     * Deletes a policy: Check and GetPolicy no longer find it. Its version numbers are not
     * reused: a later PutPolicy of the same name continues after the deletion.
     * </pre>
     */
    default void deletePolicy(dev.chunkscope.v1.DeletePolicyRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeletePolicyResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeletePolicyMethod(), responseObserver);
    }

    /**
     * <pre>
     * Checks texts or chat messages against a policy; honours the call's deadline.
     * </pre>
     */
    default void check(dev.chunkscope.v1.CheckRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.CheckResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCheckMethod(), responseObserver);
    }

    /**
     * <pre>
     * Stores a new version of an intervention preset (version 1 when the name is new).
     * </pre>
     */
    default void putPreset(dev.chunkscope.v1.PutPresetRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.PutPresetResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPutPresetMethod(), responseObserver);
    }

    /**
     * <pre>
     * A preset: its latest version, or a given one.
     * </pre>
     */
    default void getPreset(dev.chunkscope.v1.GetPresetRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetPresetResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetPresetMethod(), responseObserver);
    }

    /**
     * <pre>
     * The latest version of every preset, or every version of one preset.
     * </pre>
     */
    default void listPresets(dev.chunkscope.v1.ListPresetsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListPresetsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListPresetsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Deletes a preset: Generate, Perturb and GetPreset no longer find it. Its version numbers
     * are not reused.
     * </pre>
     */
    default void deletePreset(dev.chunkscope.v1.DeletePresetRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeletePresetResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeletePresetMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service GuardService.
   * <pre>
   * Policies over stored dictionaries, and a guard call that checks texts against one.
   * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
   * readable, and a Check names the version it used. Admins manage policies (every change is
   * audited); monitors may read them and call Check.
   * Check answers a verdict only when it could check: any failure (unknown policy, model not
   * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
   * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
   * caller's choice (docs/GUARD.md).
   * </pre>
   */
  public static abstract class GuardServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return GuardServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service GuardService.
   * <pre>
   * Policies over stored dictionaries, and a guard call that checks texts against one.
   * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
   * readable, and a Check names the version it used. Admins manage policies (every change is
   * audited); monitors may read them and call Check.
   * Check answers a verdict only when it could check: any failure (unknown policy, model not
   * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
   * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
   * caller's choice (docs/GUARD.md).
   * </pre>
   */
  public static final class GuardServiceStub
      extends io.grpc.stub.AbstractAsyncStub<GuardServiceStub> {
    private GuardServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected GuardServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new GuardServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Stores a new version of a policy (version 1 when the name is new).
     * </pre>
     */
    public void putPolicy(dev.chunkscope.v1.PutPolicyRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.PutPolicyResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPutPolicyMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * A policy: its latest version, or a given one.
     * </pre>
     */
    public void getPolicy(dev.chunkscope.v1.GetPolicyRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetPolicyResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetPolicyMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * The latest version of every policy, or every version of one policy.
     * </pre>
     */
    public void listPolicies(dev.chunkscope.v1.ListPoliciesRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListPoliciesResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListPoliciesMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Deletes a policy: Check and GetPolicy no longer find it. Its version numbers are not
     * reused: a later PutPolicy of the same name continues after the deletion.
     * </pre>
     */
    public void deletePolicy(dev.chunkscope.v1.DeletePolicyRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeletePolicyResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeletePolicyMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Checks texts or chat messages against a policy; honours the call's deadline.
     * </pre>
     */
    public void check(dev.chunkscope.v1.CheckRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.CheckResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCheckMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Stores a new version of an intervention preset (version 1 when the name is new).
     * </pre>
     */
    public void putPreset(dev.chunkscope.v1.PutPresetRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.PutPresetResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPutPresetMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * A preset: its latest version, or a given one.
     * </pre>
     */
    public void getPreset(dev.chunkscope.v1.GetPresetRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetPresetResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetPresetMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * The latest version of every preset, or every version of one preset.
     * </pre>
     */
    public void listPresets(dev.chunkscope.v1.ListPresetsRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListPresetsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListPresetsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Deletes a preset: Generate, Perturb and GetPreset no longer find it. Its version numbers
     * are not reused.
     * </pre>
     */
    public void deletePreset(dev.chunkscope.v1.DeletePresetRequest request,
        io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeletePresetResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeletePresetMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service GuardService.
   * <pre>
   * Policies over stored dictionaries, and a guard call that checks texts against one.
   * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
   * readable, and a Check names the version it used. Admins manage policies (every change is
   * audited); monitors may read them and call Check.
   * Check answers a verdict only when it could check: any failure (unknown policy, model not
   * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
   * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
   * caller's choice (docs/GUARD.md).
   * </pre>
   */
  public static final class GuardServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<GuardServiceBlockingV2Stub> {
    private GuardServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected GuardServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new GuardServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Stores a new version of a policy (version 1 when the name is new).
     * </pre>
     */
    public dev.chunkscope.v1.PutPolicyResponse putPolicy(dev.chunkscope.v1.PutPolicyRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getPutPolicyMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * A policy: its latest version, or a given one.
     * </pre>
     */
    public dev.chunkscope.v1.GetPolicyResponse getPolicy(dev.chunkscope.v1.GetPolicyRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetPolicyMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The latest version of every policy, or every version of one policy.
     * </pre>
     */
    public dev.chunkscope.v1.ListPoliciesResponse listPolicies(dev.chunkscope.v1.ListPoliciesRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListPoliciesMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a policy: Check and GetPolicy no longer find it. Its version numbers are not
     * reused: a later PutPolicy of the same name continues after the deletion.
     * </pre>
     */
    public dev.chunkscope.v1.DeletePolicyResponse deletePolicy(dev.chunkscope.v1.DeletePolicyRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDeletePolicyMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Checks texts or chat messages against a policy; honours the call's deadline.
     * </pre>
     */
    public dev.chunkscope.v1.CheckResponse check(dev.chunkscope.v1.CheckRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCheckMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stores a new version of an intervention preset (version 1 when the name is new).
     * </pre>
     */
    public dev.chunkscope.v1.PutPresetResponse putPreset(dev.chunkscope.v1.PutPresetRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getPutPresetMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * A preset: its latest version, or a given one.
     * </pre>
     */
    public dev.chunkscope.v1.GetPresetResponse getPreset(dev.chunkscope.v1.GetPresetRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetPresetMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The latest version of every preset, or every version of one preset.
     * </pre>
     */
    public dev.chunkscope.v1.ListPresetsResponse listPresets(dev.chunkscope.v1.ListPresetsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListPresetsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a preset: Generate, Perturb and GetPreset no longer find it. Its version numbers
     * are not reused.
     * </pre>
     */
    public dev.chunkscope.v1.DeletePresetResponse deletePreset(dev.chunkscope.v1.DeletePresetRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDeletePresetMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service GuardService.
   * <pre>
   * Policies over stored dictionaries, and a guard call that checks texts against one.
   * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
   * readable, and a Check names the version it used. Admins manage policies (every change is
   * audited); monitors may read them and call Check.
   * Check answers a verdict only when it could check: any failure (unknown policy, model not
   * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
   * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
   * caller's choice (docs/GUARD.md).
   * </pre>
   */
  public static final class GuardServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<GuardServiceBlockingStub> {
    private GuardServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected GuardServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new GuardServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Stores a new version of a policy (version 1 when the name is new).
     * </pre>
     */
    public dev.chunkscope.v1.PutPolicyResponse putPolicy(dev.chunkscope.v1.PutPolicyRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPutPolicyMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * A policy: its latest version, or a given one.
     * </pre>
     */
    public dev.chunkscope.v1.GetPolicyResponse getPolicy(dev.chunkscope.v1.GetPolicyRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetPolicyMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The latest version of every policy, or every version of one policy.
     * </pre>
     */
    public dev.chunkscope.v1.ListPoliciesResponse listPolicies(dev.chunkscope.v1.ListPoliciesRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListPoliciesMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a policy: Check and GetPolicy no longer find it. Its version numbers are not
     * reused: a later PutPolicy of the same name continues after the deletion.
     * </pre>
     */
    public dev.chunkscope.v1.DeletePolicyResponse deletePolicy(dev.chunkscope.v1.DeletePolicyRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeletePolicyMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Checks texts or chat messages against a policy; honours the call's deadline.
     * </pre>
     */
    public dev.chunkscope.v1.CheckResponse check(dev.chunkscope.v1.CheckRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCheckMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stores a new version of an intervention preset (version 1 when the name is new).
     * </pre>
     */
    public dev.chunkscope.v1.PutPresetResponse putPreset(dev.chunkscope.v1.PutPresetRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPutPresetMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * A preset: its latest version, or a given one.
     * </pre>
     */
    public dev.chunkscope.v1.GetPresetResponse getPreset(dev.chunkscope.v1.GetPresetRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetPresetMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * The latest version of every preset, or every version of one preset.
     * </pre>
     */
    public dev.chunkscope.v1.ListPresetsResponse listPresets(dev.chunkscope.v1.ListPresetsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListPresetsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a preset: Generate, Perturb and GetPreset no longer find it. Its version numbers
     * are not reused.
     * </pre>
     */
    public dev.chunkscope.v1.DeletePresetResponse deletePreset(dev.chunkscope.v1.DeletePresetRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeletePresetMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service GuardService.
   * <pre>
   * Policies over stored dictionaries, and a guard call that checks texts against one.
   * A policy is named and versioned: every PutPolicy stores a new version, older versions stay
   * readable, and a Check names the version it used. Admins manage policies (every change is
   * audited); monitors may read them and call Check.
   * Check answers a verdict only when it could check: any failure (unknown policy, model not
   * ready, deadline exceeded, server overloaded) is a gRPC error status, never a verdict. Whether
   * a gateway then lets the traffic through (fail open) or refuses it (fail closed) is the
   * caller's choice (docs/GUARD.md).
   * </pre>
   */
  public static final class GuardServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<GuardServiceFutureStub> {
    private GuardServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected GuardServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new GuardServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Stores a new version of a policy (version 1 when the name is new).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.PutPolicyResponse> putPolicy(
        dev.chunkscope.v1.PutPolicyRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPutPolicyMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * A policy: its latest version, or a given one.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.GetPolicyResponse> getPolicy(
        dev.chunkscope.v1.GetPolicyRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetPolicyMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * The latest version of every policy, or every version of one policy.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.ListPoliciesResponse> listPolicies(
        dev.chunkscope.v1.ListPoliciesRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListPoliciesMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Deletes a policy: Check and GetPolicy no longer find it. Its version numbers are not
     * reused: a later PutPolicy of the same name continues after the deletion.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.DeletePolicyResponse> deletePolicy(
        dev.chunkscope.v1.DeletePolicyRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeletePolicyMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Checks texts or chat messages against a policy; honours the call's deadline.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.CheckResponse> check(
        dev.chunkscope.v1.CheckRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCheckMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Stores a new version of an intervention preset (version 1 when the name is new).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.PutPresetResponse> putPreset(
        dev.chunkscope.v1.PutPresetRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPutPresetMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * A preset: its latest version, or a given one.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.GetPresetResponse> getPreset(
        dev.chunkscope.v1.GetPresetRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetPresetMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * The latest version of every preset, or every version of one preset.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.ListPresetsResponse> listPresets(
        dev.chunkscope.v1.ListPresetsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListPresetsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Deletes a preset: Generate, Perturb and GetPreset no longer find it. Its version numbers
     * are not reused.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.chunkscope.v1.DeletePresetResponse> deletePreset(
        dev.chunkscope.v1.DeletePresetRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeletePresetMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_PUT_POLICY = 0;
  private static final int METHODID_GET_POLICY = 1;
  private static final int METHODID_LIST_POLICIES = 2;
  private static final int METHODID_DELETE_POLICY = 3;
  private static final int METHODID_CHECK = 4;
  private static final int METHODID_PUT_PRESET = 5;
  private static final int METHODID_GET_PRESET = 6;
  private static final int METHODID_LIST_PRESETS = 7;
  private static final int METHODID_DELETE_PRESET = 8;

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
        case METHODID_PUT_POLICY:
          serviceImpl.putPolicy((dev.chunkscope.v1.PutPolicyRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.PutPolicyResponse>) responseObserver);
          break;
        case METHODID_GET_POLICY:
          serviceImpl.getPolicy((dev.chunkscope.v1.GetPolicyRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetPolicyResponse>) responseObserver);
          break;
        case METHODID_LIST_POLICIES:
          serviceImpl.listPolicies((dev.chunkscope.v1.ListPoliciesRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListPoliciesResponse>) responseObserver);
          break;
        case METHODID_DELETE_POLICY:
          serviceImpl.deletePolicy((dev.chunkscope.v1.DeletePolicyRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeletePolicyResponse>) responseObserver);
          break;
        case METHODID_CHECK:
          serviceImpl.check((dev.chunkscope.v1.CheckRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.CheckResponse>) responseObserver);
          break;
        case METHODID_PUT_PRESET:
          serviceImpl.putPreset((dev.chunkscope.v1.PutPresetRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.PutPresetResponse>) responseObserver);
          break;
        case METHODID_GET_PRESET:
          serviceImpl.getPreset((dev.chunkscope.v1.GetPresetRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.GetPresetResponse>) responseObserver);
          break;
        case METHODID_LIST_PRESETS:
          serviceImpl.listPresets((dev.chunkscope.v1.ListPresetsRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.ListPresetsResponse>) responseObserver);
          break;
        case METHODID_DELETE_PRESET:
          serviceImpl.deletePreset((dev.chunkscope.v1.DeletePresetRequest) request,
              (io.grpc.stub.StreamObserver<dev.chunkscope.v1.DeletePresetResponse>) responseObserver);
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
          getPutPolicyMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.PutPolicyRequest,
              dev.chunkscope.v1.PutPolicyResponse>(
                service, METHODID_PUT_POLICY)))
        .addMethod(
          getGetPolicyMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.GetPolicyRequest,
              dev.chunkscope.v1.GetPolicyResponse>(
                service, METHODID_GET_POLICY)))
        .addMethod(
          getListPoliciesMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.ListPoliciesRequest,
              dev.chunkscope.v1.ListPoliciesResponse>(
                service, METHODID_LIST_POLICIES)))
        .addMethod(
          getDeletePolicyMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.DeletePolicyRequest,
              dev.chunkscope.v1.DeletePolicyResponse>(
                service, METHODID_DELETE_POLICY)))
        .addMethod(
          getCheckMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.CheckRequest,
              dev.chunkscope.v1.CheckResponse>(
                service, METHODID_CHECK)))
        .addMethod(
          getPutPresetMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.PutPresetRequest,
              dev.chunkscope.v1.PutPresetResponse>(
                service, METHODID_PUT_PRESET)))
        .addMethod(
          getGetPresetMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.GetPresetRequest,
              dev.chunkscope.v1.GetPresetResponse>(
                service, METHODID_GET_PRESET)))
        .addMethod(
          getListPresetsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.ListPresetsRequest,
              dev.chunkscope.v1.ListPresetsResponse>(
                service, METHODID_LIST_PRESETS)))
        .addMethod(
          getDeletePresetMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.chunkscope.v1.DeletePresetRequest,
              dev.chunkscope.v1.DeletePresetResponse>(
                service, METHODID_DELETE_PRESET)))
        .build();
  }

  private static abstract class GuardServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    GuardServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.chunkscope.v1.GuardProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("GuardService");
    }
  }

  private static final class GuardServiceFileDescriptorSupplier
      extends GuardServiceBaseDescriptorSupplier {
    GuardServiceFileDescriptorSupplier() {}
  }

  private static final class GuardServiceMethodDescriptorSupplier
      extends GuardServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    GuardServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (GuardServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new GuardServiceFileDescriptorSupplier())
              .addMethod(getPutPolicyMethod())
              .addMethod(getGetPolicyMethod())
              .addMethod(getListPoliciesMethod())
              .addMethod(getDeletePolicyMethod())
              .addMethod(getCheckMethod())
              .addMethod(getPutPresetMethod())
              .addMethod(getGetPresetMethod())
              .addMethod(getListPresetsMethod())
              .addMethod(getDeletePresetMethod())
              .build();
        }
      }
    }
    return result;
  }
}
