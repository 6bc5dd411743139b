package chunkscope

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errEOF = io.EOF

// Error is a failed call: the gRPC status code and message plus the details the server attaches
// (google.rpc.ErrorInfo and google.rpc.BadRequest, decoded from the grpc-status-details-bin
// trailer). Every error the client returns for a failed call is an *Error:
//
//	var e *chunkscope.Error
//	if errors.As(err, &e) && e.Code == codes.NotFound { ... e.Reason ... }
//
// It also works with status.Code(err) and status.FromError.
type Error struct {
	// The status code.
	Code codes.Code
	// The status message, as the server wrote it.
	Message string
	// ErrorInfo's reason, e.g. "MODEL_NOT_FOUND"; empty when the server sent none.
	Reason string
	// ErrorInfo's domain.
	Domain string
	// ErrorInfo's metadata.
	Metadata map[string]string
	// BadRequest's field violations: which request field was wrong and why.
	FieldViolations []FieldViolation

	status *status.Status
}

// FieldViolation names one invalid request field.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is "chunkscope: <code>: <message>".
func (e *Error) Error() string {
	return fmt.Sprintf("chunkscope: %s: %s", e.Code, e.Message)
}

// GRPCStatus makes status.FromError and status.Code see the original status.
func (e *Error) GRPCStatus() *status.Status {
	if e.status != nil {
		return e.status
	}
	return status.New(e.Code, e.Message)
}

// Is matches another *Error by code, so errors.Is(err, &chunkscope.Error{Code: codes.NotFound})
// works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ErrorFromStatus builds an *Error from a gRPC status, decoding its details.
func ErrorFromStatus(s *status.Status) *Error {
	e := &Error{Code: s.Code(), Message: s.Message(), status: s}
	for _, detail := range s.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			e.Reason, e.Domain, e.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations,
					FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}

// Code is the status code of err: its *Error's code, codes.OK for nil and codes.Unknown for
// other errors.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

// asError turns a gRPC status error into an *Error; other errors (nil included) pass unchanged.
func asError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if s, ok := status.FromError(err); ok {
		return ErrorFromStatus(s)
	}
	return err
}
