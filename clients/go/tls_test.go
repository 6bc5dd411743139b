package chunkscope_test

// TLS and mutual TLS against a real gRPC server over loopback (the standard health service; the
// chunkscope fixture server itself is plaintext), with certificates made here.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
)

type issued struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// issue makes a certificate signed by parent (self-signed when parent is nil).
func issue(t *testing.T, name string, parent *issued, isCA bool, usage x509.ExtKeyUsage) *issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:         isCA, BasicConstraintsValid: true,
	}
	if !isCA {
		template.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		template.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	signer, signerKey := template, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
}

func TestTLSAndMutualTLS(t *testing.T) {
	ca := issue(t, "test CA", nil, true, 0)
	serverCert := issue(t, "server", ca, false, x509.ExtKeyUsageServerAuth)
	clientCert := issue(t, "client", ca, false, x509.ExtKeyUsageClientAuth)
	pair, err := tls.X509KeyPair(serverCert.certPEM, serverCert.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	var mu sync.Mutex
	var authorization []string
	server := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			authorization = md.Get("authorization")
			mu.Unlock()
			return handler(ctx, req)
		}))
	grpc_health_v1.RegisterHealthServer(server, health.NewServer())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	address := listener.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := chunkscope.Dial(ctx, address, chunkscope.WithCA(ca.certPEM),
		chunkscope.WithClientCertificate(clientCert.certPEM, clientCert.keyPEM), chunkscope.WithToken("secret"))
	if err != nil {
		t.Fatalf("Dial with CA and client certificate: %v", err)
	}
	defer c.Close()
	got, err := c.Health(ctx, "")
	if err != nil || got != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("Health over mTLS: %v, %v", got, err)
	}
	mu.Lock()
	if len(authorization) != 1 || authorization[0] != "Bearer secret" {
		t.Errorf("authorization metadata %q, want [\"Bearer secret\"]", authorization)
	}
	mu.Unlock()

	// Without the client certificate the server refuses the handshake; without the CA the client
	// does not trust the server.
	for name, opts := range map[string][]chunkscope.Option{
		"no client certificate": {chunkscope.WithCA(ca.certPEM)},
		"system roots only": {chunkscope.WithTLS(),
			chunkscope.WithClientCertificate(clientCert.certPEM, clientCert.keyPEM)},
	} {
		bad, err := chunkscope.New(address, opts...)
		if err != nil {
			t.Fatal(err)
		}
		callCtx, callCancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = bad.Health(callCtx, "")
		callCancel()
		_ = bad.Close()
		if chunkscope.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want Unavailable", name, err)
		}
	}
}
