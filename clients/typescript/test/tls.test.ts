// TLS and mutual TLS. The fixture serves plaintext, so these run against a loopback gRPC server
// of the standard health protocol over TLS (Connect's Node adapter on node:http2), with a CA,
// server and client certificates made by openssl for this run. It also records the request
// headers, to show the bearer token arrives.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { connectNodeAdapter } from "@connectrpc/connect-node";

import { ChunkscopeClient, Code, type TlsOptions } from "../src/index.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { failure } from "./support.js";

interface Pki {
  ca: string;
  otherCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a stranger CA. */
function makePki(dir: string): Pki {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ca = (name: string) =>
    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "1", "-subj", `/CN=${name}`); // prettier-ignore
  const leaf = (name: string, ext: string) => {
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`); // prettier-ignore
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key",
      "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", ext); // prettier-ignore
  };
  ca("ca");
  ca("other-ca");
  execFileSync("sh", ["-c", "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext"], {
    cwd: dir,
  });
  execFileSync("sh", ["-c", "printf 'extendedKeyUsage=clientAuth\\n' > client.ext"], { cwd: dir });
  leaf("server", "server.ext");
  leaf("client", "client.ext");
  const read = (name: string) => readFileSync(join(dir, name), "utf8");
  return {
    ca: read("ca.pem"),
    otherCa: read("other-ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
  };
}

/** A TLS gRPC server answering Health.Check; `mutual` requires a client certificate. */
async function serve(pki: Pki, mutual: boolean, seen: Headers[]): Promise<Http2SecureServer> {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(Health, {
        check: (_request, context) => {
          seen.push(context.requestHeader);
          return { status: HealthCheckResponse_ServingStatus.SERVING };
        },
        watch: async function* () {},
      }),
  });
  const server = createSecureServer(
    {
      cert: pki.serverCert,
      key: pki.serverKey,
      ca: pki.ca,
      requestCert: mutual,
      rejectUnauthorized: mutual,
      allowHTTP1: false,
    },
    handler,
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

describe("TLS", () => {
  let dir: string;
  let pki: Pki;
  let tlsServer: Http2SecureServer;
  let mtlsServer: Http2SecureServer;
  const seen: Headers[] = [];
  const addressOf = (server: Http2SecureServer) =>
    `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const check = async (server: Http2SecureServer, tls: TlsOptions | boolean, token = "") => {
    const client = new ChunkscopeClient({
      address: addressOf(server),
      tls,
      token,
      timeoutMs: 5000,
    });
    try {
      return await client.health();
    } finally {
      client.close();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "chunkscope-ts-tls-"));
    pki = makePki(dir);
    tlsServer = await serve(pki, false, seen);
    mtlsServer = await serve(pki, true, seen);
  });

  after(() => {
    tlsServer?.close();
    mtlsServer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("trusts a server signed by the given CA, and sends the bearer token", async () => {
    seen.length = 0;
    assert.equal(await check(tlsServer, { rootCerts: pki.ca }, "secret-token"), "SERVING");
    assert.equal(seen.at(-1)?.get("authorization"), "Bearer secret-token");
    // Bytes work as well as strings.
    assert.equal(await check(tlsServer, { rootCerts: Buffer.from(pki.ca) }), "SERVING");
    assert.equal(seen.at(-1)?.get("authorization"), null);
  });

  it("refuses a server its roots do not vouch for", async () => {
    const untrusted = await failure(() => check(tlsServer, { rootCerts: pki.otherCa }));
    assert.equal(untrusted.code, Code.Unavailable);
    // Node's bundled trust store does not know this test CA either.
    const system = await failure(() => check(tlsServer, true));
    assert.equal(system.code, Code.Unavailable);
  });

  it("presents a client certificate for mutual TLS; without one the server refuses", async () => {
    const mutual = { rootCerts: pki.ca, certChain: pki.clientCert, privateKey: pki.clientKey };
    assert.equal(await check(mtlsServer, mutual), "SERVING");
    const anonymous = await failure(() => check(mtlsServer, { rootCerts: pki.ca }));
    assert.equal(anonymous.code, Code.Unavailable);
  });

  it("checks the server name: a certificate for another name is refused", async () => {
    const wrong = await failure(() =>
      check(tlsServer, { rootCerts: pki.ca, serverName: "not-the-server.example" }),
    );
    assert.equal(wrong.code, Code.Unavailable);
    // The right name (the certificate's DNS name) on an IP address passes.
    assert.equal(await check(tlsServer, { rootCerts: pki.ca, serverName: "localhost" }), "SERVING");
  });
});
