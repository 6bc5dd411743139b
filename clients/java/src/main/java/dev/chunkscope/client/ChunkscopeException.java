package dev.chunkscope.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A failed call: the gRPC status code and message plus the server's rich error details ({@code
 * google.rpc.ErrorInfo} and {@code google.rpc.BadRequest}, decoded from the {@code
 * grpc-status-details-bin} trailer).
 *
 * <p>Unchecked, like grpc-java's own {@code StatusRuntimeException}, which is kept as the cause.
 * {@link #getMessage()} reads {@code "NOT_FOUND: model \"x\" is not registered"}; the server's
 * message alone is {@link #description()}.
 */
public final class ChunkscopeException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** One entry of {@code google.rpc.BadRequest}: which request field was wrong, and why. */
  public record FieldViolation(String field, String description) {
    public FieldViolation {
      Objects.requireNonNull(field, "field");
      Objects.requireNonNull(description, "description");
    }
  }

  private final Status.Code code;
  private final String description;
  private final String reason;
  private final String domain;
  private final Map<String, String> metadata;
  private final List<FieldViolation> fieldViolations;

  /** An error raised by this client itself (no server details). */
  public ChunkscopeException(Status.Code code, String description) {
    this(code, description, "", "", Map.of(), List.of(), null);
  }

  private ChunkscopeException(
      Status.Code code,
      String description,
      String reason,
      String domain,
      Map<String, String> metadata,
      List<FieldViolation> fieldViolations,
      Throwable cause) {
    super(code.name() + ": " + description, cause);
    this.code = code;
    this.description = description;
    this.reason = reason;
    this.domain = domain;
    this.metadata = Map.copyOf(metadata);
    this.fieldViolations = List.copyOf(fieldViolations);
  }

  /**
   * The exception for any failure of a gRPC call ({@code StatusRuntimeException}, {@code
   * StatusException}, or anything else, which becomes {@code UNKNOWN}); returned as is if it
   * already is one.
   */
  public static ChunkscopeException from(Throwable error) {
    if (error instanceof ChunkscopeException known) {
      return known;
    }
    Status status = Status.fromThrowable(error);
    String description = status.getDescription() == null ? "" : status.getDescription();
    String reason = "";
    String domain = "";
    Map<String, String> metadata = Map.of();
    List<FieldViolation> violations = List.of();
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    if (details != null) {
      for (Any detail : details.getDetailsList()) {
        try {
          if (detail.is(ErrorInfo.class)) {
            ErrorInfo info = detail.unpack(ErrorInfo.class);
            reason = info.getReason();
            domain = info.getDomain();
            metadata = info.getMetadataMap();
          } else if (detail.is(BadRequest.class)) {
            violations =
                detail.unpack(BadRequest.class).getFieldViolationsList().stream()
                    .map(v -> new FieldViolation(v.getField(), v.getDescription()))
                    .toList();
          }
        } catch (InvalidProtocolBufferException malformed) {
          // A detail that does not parse is skipped: the code and message still stand.
        }
      }
    }
    return new ChunkscopeException(
        status.getCode(), description, reason, domain, metadata, violations, error);
  }

  /** The gRPC status code, e.g. {@code NOT_FOUND}. */
  public Status.Code code() {
    return code;
  }

  /** The server's status message, exactly as sent (empty when there is none). */
  public String description() {
    return description;
  }

  /** {@code google.rpc.ErrorInfo.reason}, e.g. {@code MODEL_NOT_FOUND}; empty when absent. */
  public String reason() {
    return reason;
  }

  /** {@code google.rpc.ErrorInfo.domain}; empty when absent. */
  public String domain() {
    return domain;
  }

  /** {@code google.rpc.ErrorInfo.metadata} (immutable; empty when absent). */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** {@code google.rpc.BadRequest} field violations, in the server's order (immutable). */
  public List<FieldViolation> fieldViolations() {
    return fieldViolations;
  }
}
