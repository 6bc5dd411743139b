package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.TlsServerCredentials;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.protobuf.services.HealthStatusManager;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The TLS options against a real gRPC server on loopback that requires mutual TLS (the chunkscope
 * fixture serves plaintext): a private CA and certificates made with openssl, the standard health
 * service, and an interceptor that records the authorization header the client sent.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TlsTest {
  private Path dir;
  private Server server;
  private final AtomicReference<String> authorization = new AtomicReference<>();

  private void openssl(String... args) throws IOException, InterruptedException {
    List<String> command = new java.util.ArrayList<>(List.of("openssl"));
    command.addAll(List.of(args));
    Process process =
        new ProcessBuilder(command)
            .directory(dir.toFile())
            .redirectErrorStream(true)
            .redirectOutput(new File(dir.toFile(), "openssl.log"))
            .start();
    if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
      throw new IOException(
          "openssl "
              + String.join(" ", args)
              + " failed: "
              + Files.readString(dir.resolve("openssl.log")));
    }
  }

  /** A key and a certificate signed by the test CA; the key in PKCS#8 PEM. */
  private void issue(String name, String extensions) throws Exception {
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        name + ".key",
        "-out",
        name + ".csr",
        "-subj",
        "/CN=" + name);
    Files.writeString(dir.resolve(name + ".ext"), extensions);
    openssl(
        "x509",
        "-req",
        "-in",
        name + ".csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        name + ".pem",
        "-extfile",
        name + ".ext");
  }

  @BeforeAll
  void start(@TempDir Path tempDir) throws Exception {
    dir = tempDir;
    boolean haveOpenssl;
    try {
      openssl("version");
      haveOpenssl = true;
    } catch (IOException missing) {
      haveOpenssl = false;
    }
    assumeTrue(haveOpenssl, "openssl is needed to make the test certificates");
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=chunkscope test CA");
    issue("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    issue("client", "extendedKeyUsage=clientAuth\n");
    // A CA the server does not know, for a client certificate it must refuse.
    Files.createDirectories(dir.resolve("other"));
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "other/client.key",
        "-out",
        "other/client.pem",
        "-days",
        "1",
        "-subj",
        "/CN=stranger");

    TlsServerCredentials credentials =
        (TlsServerCredentials)
            TlsServerCredentials.newBuilder()
                .keyManager(dir.resolve("server.pem").toFile(), dir.resolve("server.key").toFile())
                .trustManager(dir.resolve("ca.pem").toFile())
                .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
                .build();
    Metadata.Key<String> key = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    ServerInterceptor recorder =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(
              ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            authorization.set(headers.get(key));
            return next.startCall(call, headers);
          }
        };
    HealthStatusManager health = new HealthStatusManager();
    server =
        Grpc.newServerBuilderForPort(0, credentials)
            .addService(ServerInterceptors.intercept(health.getHealthService(), recorder))
            .build()
            .start();
  }

  @AfterAll
  void stop() throws InterruptedException {
    if (server != null) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private ChunkscopeClient.Builder builder(String host) {
    return ChunkscopeClient.builder()
        .address(host + ":" + server.getPort())
        .defaultDeadline(Duration.ofSeconds(10));
  }

  @Test
  void mutualTlsWithThePrivateCaAndTheToken() {
    try (ChunkscopeClient client =
        builder("localhost")
            .trustedCertificates(dir.resolve("ca.pem"))
            .clientCertificate(dir.resolve("client.pem"), dir.resolve("client.key"))
            .token("s3cret")
            .build()) {
      assertEquals(ServingStatus.SERVING, client.health());
      assertEquals("Bearer s3cret", authorization.get());
    }
    // By IP address too (the certificate names 127.0.0.1), and with the name overridden.
    try (ChunkscopeClient client =
        builder("127.0.0.1")
            .trustedCertificates(dir.resolve("ca.pem"))
            .clientCertificate(dir.resolve("client.pem"), dir.resolve("client.key"))
            .overrideAuthority("localhost")
            .token("")
            .build()) {
      assertEquals(ServingStatus.SERVING, client.health());
      assertEquals(null, authorization.get(), "no token, no authorization header");
    }
  }

  private static void assertUnavailable(ChunkscopeClient.Builder builder) {
    try (ChunkscopeClient client = builder.build()) {
      ChunkscopeException error = assertThrows(ChunkscopeException.class, client::health);
      assertEquals(Status.Code.UNAVAILABLE, error.code(), error.getMessage());
    }
  }

  @Test
  void withoutAClientCertificateTheServerRefuses() {
    assertUnavailable(builder("localhost").trustedCertificates(dir.resolve("ca.pem")));
  }

  @Test
  void aClientCertificateFromAnotherCaIsRefused() {
    assertUnavailable(
        builder("localhost")
            .trustedCertificates(dir.resolve("ca.pem"))
            .clientCertificate(dir.resolve("other/client.pem"), dir.resolve("other/client.key")));
  }

  @Test
  void theSystemRootsDoNotTrustThePrivateCa() {
    assertUnavailable(
        builder("localhost")
            .tls()
            .clientCertificate(dir.resolve("client.pem"), dir.resolve("client.key")));
  }

  @Test
  void aNameTheCertificateDoesNotCarryIsRefused() {
    assertUnavailable(
        builder("localhost")
            .trustedCertificates(dir.resolve("ca.pem"))
            .clientCertificate(dir.resolve("client.pem"), dir.resolve("client.key"))
            .overrideAuthority("chunkscope.example"));
  }

  @Test
  void plaintextToATlsServerFails() {
    assertUnavailable(builder("localhost"));
  }
}
