// Our bundle endpoint (SPIFFE Trust Domain and Bundle §5, profile https_spiffe): HTTPS served
// with the control plane's own SVID, answering GET / with this trust domain's bundle as a
// SPIFFE bundle. During a root rotation the bundle holds both roots (it is the CA's trust
// bundle). The sequence number is the time, in seconds, this process first served the
// current roots, so it grows with every change and across restarts.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { encodeSpiffeBundle } from './bundle-format.js';

/** A TLS identity (PEM chain and key) that may change (renewal, root rotation). */
export interface ServingIdentity {
  current(): { readonly certificate: Buffer; readonly privateKey: Buffer } | undefined;
  onChange(cb: () => void): () => void;
}

/** A running bundle endpoint. */
export interface BundleEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the bundle endpoint on host:port (0 picks a port). */
export async function startBundleEndpoint(deps: {
  host: string;
  port: number;
  identity: ServingIdentity;
  trustBundle: () => { readonly rootsPem: readonly string[]; readonly version: string };
  refreshHintSeconds: number;
  clock: Clock;
  log: Logger;
}): Promise<BundleEndpoint> {
  const first = deps.identity.current();
  if (!first) throw new Error('bundle endpoint: the control plane has no serving certificate yet');
  let served: { version: string; sequence: number; body: string } | undefined;
  const body = (): string => {
    const b = deps.trustBundle();
    if (served?.version !== b.version) {
      const sequence = Math.max(Math.floor(deps.clock.now() / 1000), (served?.sequence ?? 0) + 1);
      served = {
        version: b.version,
        sequence,
        body: encodeSpiffeBundle({ rootsPem: b.rootsPem, sequence, refreshHintSeconds: deps.refreshHintSeconds }),
      };
    }
    return served.body;
  };
  const server = https.createServer({ cert: first.certificate, key: first.privateKey, minVersion: 'TLSv1.2' }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/') {
      res.writeHead(req.method !== 'GET' ? 405 : 404, { 'content-type': 'text/plain' }).end('the SPIFFE bundle is served at GET /\n');
      return;
    }
    const text = body();
    res
      .writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
      .end(text);
  });
  const offIdentity = deps.identity.onChange(() => {
    const id = deps.identity.current();
    if (id) server.setSecureContext({ cert: id.certificate, key: id.privateKey, minVersion: 'TLSv1.2' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: deps.host, port: deps.port }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  deps.log.info('bundle endpoint listening', {
    url: `https://${deps.host.includes(':') ? `[${deps.host}]` : deps.host}:${port}/`,
    refreshHintSeconds: deps.refreshHintSeconds,
  });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        offIdentity();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
