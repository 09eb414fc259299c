// A throwaway CA and certificates made with openssl for servers outside the mesh (TLS origination
// tests), and an HTTPS echo server that uses them. Everything lives in one temporary directory.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Files of a test PKI: a CA, a server certificate for `serverName`, and a client certificate. */
export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Removes the directory. */
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** Makes a CA (`name` in its subject), a server certificate with DNS SAN `serverName`, and a client certificate `CN=client`. */
export function makeTestPki(name: string, serverName: string): TestPki {
  const dir = mkdtempSync(join(tmpdir(), `meshpilot-drse-pki-${name}-`));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', `/CN=${name} test CA`], dir);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth\n`);
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [who, subj] of [
    ['server', `/CN=${serverName}`],
    ['client', '/CN=client'],
  ] as const) {
    openssl(['req', '-new', ...ec, '-keyout', `${who}-key.pem`, '-out', `${who}.csr`, '-subj', subj], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${who}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca-key.pem',
        '-CAcreateserial',
        '-days',
        '1',
        '-out',
        `${who}.pem`,
        '-extfile',
        `${who}.ext`,
      ],
      dir,
    );
  }
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client-key.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What the HTTPS echo server answers: who it is, the SNI it got, and the client certificate's CN if one was presented. */
export interface HttpsAnswer {
  readonly server: string;
  readonly sni: string | undefined;
  readonly clientCn: string | undefined;
  readonly path: string;
}

/** A running HTTPS echo server on a loopback address and a free port. */
export interface HttpsEcho {
  readonly host: string;
  readonly port: number;
  readonly requestCount: number;
  close(): Promise<void>;
}

/** Starts an HTTPS server with the PKI's server certificate; with `requireClientCert`, only clients with a certificate from the CA get through. */
export async function startHttpsEcho(opts: { name: string; host: string; pki: TestPki; requireClientCert?: boolean }): Promise<HttpsEcho> {
  let requestCount = 0;
  const server = https.createServer(
    {
      cert: readFileSync(opts.pki.serverCert),
      key: readFileSync(opts.pki.serverKey),
      ca: readFileSync(opts.pki.caCert),
      requestCert: opts.requireClientCert === true,
      rejectUnauthorized: opts.requireClientCert === true,
    },
    (req, res) => {
      requestCount++;
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      const answer: HttpsAnswer = {
        server: opts.name,
        sni: (socket as TLSSocket & { servername?: string }).servername || undefined,
        clientCn: peer && typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined,
        path: req.url ?? '',
      };
      const body = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: 0 }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  let closing: Promise<void> | undefined;
  return {
    host: opts.host,
    port: address.port,
    get requestCount() {
      return requestCount;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
