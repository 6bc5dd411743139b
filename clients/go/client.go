// Package chunkscope is the Go client of chunkscope, the gRPC interpretability service.
//
// It is a thin layer over the generated stubs in package chunkscopev1: Dial connects with an
// address, optional TLS and a bearer token; every call gets a deadline unless its context already
// has one (long calls get long ones); replies larger than gRPC's 4 MiB default are accepted up to
// the server's own limit (64 MiB); failures are *Error values carrying the status code and the
// server's rich error details; streaming calls are Go iterators.
//
//	c, err := chunkscope.Dial(ctx, "127.0.0.1:50051", chunkscope.WithToken(token))
//	if err != nil { ... }
//	defer c.Close()
//	for m, err := range c.ListModels(ctx) { ... }
//
// The generated stubs are available as fields (c.ModelService, ...) for anything the wrapper
// does not cover; they share the connection, so they get the same token, deadlines, size limit
// and *Error values.
package chunkscope

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// DefaultMaxMessageBytes is the server's default --max-message-bytes: the largest message the
// client sends or receives unless WithMaxMessageBytes says otherwise.
const DefaultMaxMessageBytes = 64 << 20

// DefaultTimeout is the deadline of an ordinary call whose context has none.
const DefaultTimeout = 30 * time.Second

// Default deadlines of the long calls (used when they exceed the configured default timeout).
const (
	// ExtractDictionary, StreamDetect and the analysis streams.
	DefaultLongTimeout = time.Hour
	// Generate.
	DefaultGenerateTimeout = 10 * time.Minute
	// RegisterModel with wait set (loading the weights).
	DefaultRegisterWaitTimeout = 5 * time.Minute
)

// Client is a connection to one chunkscope server, or to several replicas (see New). It is safe
// for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	timeout time.Duration

	// The generated stubs over the same connection, for direct use.
	ModelService        pb.ModelServiceClient
	DictionaryService   pb.DictionaryServiceClient
	DetectionService    pb.DetectionServiceClient
	PerturbationService pb.PerturbationServiceClient
	AnalysisService     pb.AnalysisServiceClient
	HealthService       grpc_health_v1.HealthClient
}

type config struct {
	token           string
	timeout         time.Duration
	callTimeouts    map[string]time.Duration
	maxMessageBytes int
	tls             *tls.Config
	caPEM           []byte
	certPEM, keyPEM []byte
	dialOptions     []grpc.DialOption
}

// Option configures Dial and New.
type Option func(*config)

// WithToken sends "authorization: Bearer <token>" with every call (nothing when empty). The token
// is sent over plaintext connections too, as the server's loopback deployments need.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithTimeout sets the deadline of calls whose context has none (default DefaultTimeout). Long
// calls keep their longer defaults when those are longer.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithCallTimeout sets the default deadline of one method, named by its full name, e.g.
// chunkscopev1.PerturbationService_Generate_FullMethodName. It overrides every other default.
func WithCallTimeout(fullMethod string, d time.Duration) Option {
	return func(c *config) { c.callTimeouts[fullMethod] = d }
}

// WithMaxMessageBytes sets the largest message sent or received (default DefaultMaxMessageBytes).
func WithMaxMessageBytes(n int) Option { return func(c *config) { c.maxMessageBytes = n } }

// WithTLS connects over TLS, verifying the server against the system's root certificates.
func WithTLS() Option {
	return func(c *config) {
		if c.tls == nil {
			c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
}

// WithTLSConfig connects over TLS with the given configuration (cloned; CA and client
// certificates given with WithCA and WithClientCertificate are added to it). A nil cfg is
// WithTLS.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *config) {
		if c.tls = cfg.Clone(); c.tls == nil {
			WithTLS()(c)
		}
	}
}

// WithCA connects over TLS, verifying the server against the CA certificates in pem instead of
// the system's roots.
func WithCA(pem []byte) Option {
	return func(c *config) { WithTLS()(c); c.caPEM = pem }
}

// WithClientCertificate connects over TLS presenting this certificate and key (PEM) to the
// server, for mutual TLS.
func WithClientCertificate(certPEM, keyPEM []byte) Option {
	return func(c *config) { WithTLS()(c); c.certPEM, c.keyPEM = certPEM, keyPEM }
}

// WithDialOptions passes further options to grpc.NewClient (interceptors, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// New creates a client without connecting: the connection is made by the first call, as with
// grpc.NewClient. Dial also waits until the server is reachable.
//
// address is "host:port", a comma-separated list of them ("10.0.0.1:50051,10.0.0.2:50051"), or
// a gRPC target URI such as "dns:///chunkscope.svc:50051" (every A record is used). Calls are
// spread round_robin over the addresses, and the IdempotentMethods are retried on Unavailable
// (ServiceConfig).
func New(address string, opts ...Option) (*Client, error) {
	cfg := &config{
		timeout:         DefaultTimeout,
		callTimeouts:    map[string]time.Duration{},
		maxMessageBytes: DefaultMaxMessageBytes,
	}
	for _, opt := range opts {
		opt(cfg)
	}
	creds, err := cfg.transportCredentials()
	if err != nil {
		return nil, err
	}
	target, targetDialOptions, err := targetOptions(address)
	if err != nil {
		return nil, err
	}
	dialOptions := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(ServiceConfig),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.maxMessageBytes),
			grpc.MaxCallSendMsgSize(cfg.maxMessageBytes),
		),
		grpc.WithChainUnaryInterceptor(cfg.unaryInterceptor),
		grpc.WithChainStreamInterceptor(cfg.streamInterceptor),
	}
	if cfg.token != "" {
		dialOptions = append(dialOptions, grpc.WithPerRPCCredentials(bearer(cfg.token)))
	}
	dialOptions = append(dialOptions, targetDialOptions...)
	conn, err := grpc.NewClient(target, append(dialOptions, cfg.dialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("chunkscope: %w", err)
	}
	return &Client{
		conn:                conn,
		timeout:             cfg.timeout,
		ModelService:        pb.NewModelServiceClient(conn),
		DictionaryService:   pb.NewDictionaryServiceClient(conn),
		DetectionService:    pb.NewDetectionServiceClient(conn),
		PerturbationService: pb.NewPerturbationServiceClient(conn),
		AnalysisService:     pb.NewAnalysisServiceClient(conn),
		HealthService:       grpc_health_v1.NewHealthClient(conn),
	}, nil
}

// Dial creates a client and waits until its connection is ready, or ctx ends (when ctx has no
// deadline, the configured default timeout bounds the wait). The error of an unreachable server
// is an *Error with code Unavailable or DeadlineExceeded.
func Dial(ctx context.Context, address string, opts ...Option) (*Client, error) {
	c, err := New(address, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	c.conn.Connect()
	for {
		state := c.conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !c.conn.WaitForStateChange(ctx, state) {
			code := codes.DeadlineExceeded
			if errors.Is(ctx.Err(), context.Canceled) {
				code = codes.Canceled
			}
			return &Error{Code: code, Message: fmt.Sprintf(
				"connecting to %s: %v (last state %s)", c.conn.Target(), ctx.Err(), state)}
		}
	}
}

// Conn is the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls in flight fail with code Canceled.
func (c *Client) Close() error { return c.conn.Close() }

// Health reports the serving status of the server (service "") or of one service, e.g.
// "chunkscope.v1.DetectionService".
func (c *Client) Health(ctx context.Context, service string) (grpc_health_v1.HealthCheckResponse_ServingStatus, error) {
	reply, err := c.HealthService.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: service})
	if err != nil {
		return grpc_health_v1.HealthCheckResponse_UNKNOWN, err
	}
	return reply.GetStatus(), nil
}

func (cfg *config) transportCredentials() (credentials.TransportCredentials, error) {
	if cfg.tls == nil {
		return insecure.NewCredentials(), nil
	}
	t := cfg.tls.Clone()
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	if cfg.caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.caPEM) {
			return nil, errors.New("chunkscope: WithCA: no certificate found in the PEM data")
		}
		t.RootCAs = pool
	}
	if cfg.certPEM != nil || cfg.keyPEM != nil {
		pair, err := tls.X509KeyPair(cfg.certPEM, cfg.keyPEM)
		if err != nil {
			return nil, fmt.Errorf("chunkscope: WithClientCertificate: %w", err)
		}
		t.Certificates = append(t.Certificates, pair)
	}
	return credentials.NewTLS(t), nil
}

// bearer is the token as per-call credentials.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: chunkscope servers on loopback run without TLS.
func (bearer) RequireTransportSecurity() bool { return false }

// timeoutFor is the default deadline of one call.
func (cfg *config) timeoutFor(method string, req any) time.Duration {
	if d, ok := cfg.callTimeouts[method]; ok {
		return d
	}
	long := time.Duration(0)
	switch method {
	case pb.DictionaryService_ExtractDictionary_FullMethodName,
		pb.DetectionService_StreamDetect_FullMethodName,
		pb.AnalysisService_CompareRepresentations_FullMethodName,
		pb.AnalysisService_LayerSimilarity_FullMethodName:
		long = DefaultLongTimeout
	case pb.PerturbationService_Generate_FullMethodName:
		long = DefaultGenerateTimeout
	case pb.ModelService_RegisterModel_FullMethodName:
		if r, ok := req.(*pb.RegisterModelRequest); ok && r.GetWait() {
			long = DefaultRegisterWaitTimeout
		}
	}
	return max(cfg.timeout, long)
}

// withDeadline gives ctx the method's default deadline unless it already has one.
func (cfg *config) withDeadline(ctx context.Context, method string, req any) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, cfg.timeoutFor(method, req))
}

func (cfg *config) unaryInterceptor(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := cfg.withDeadline(ctx, method, req)
	defer cancel()
	return asError(invoker(ctx, method, req, reply, cc, opts...))
}

func (cfg *config) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, cancel := cfg.withDeadline(ctx, method, nil)
	stream, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		cancel()
		return nil, asError(err)
	}
	return &clientStream{ClientStream: stream, cancel: cancel, single: !desc.ServerStreams}, nil
}

// clientStream turns a stream's errors into *Error and releases its deadline when it ends.
type clientStream struct {
	grpc.ClientStream
	cancel context.CancelFunc
	single bool // client streaming: one reply ends the call
}

func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && !errors.Is(err, errEOF) {
		return asError(err)
	}
	return err
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || s.single {
		s.cancel()
	}
	if err != nil && !errors.Is(err, errEOF) {
		return asError(err)
	}
	return err
}
