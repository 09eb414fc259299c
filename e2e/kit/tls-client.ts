import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';

/** A client certificate as `meshpilot ca issue` writes it (OUT/key.pem, cert-chain.pem, root-cert.pem). */
export interface ClientCert {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/** Reads a certificate directory written by `meshpilot ca issue`. */
export function readIssued(dir: string): ClientCert {
  return {
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    cert: readFileSync(join(dir, 'cert-chain.pem'), 'utf8'),
    ca: readFileSync(join(dir, 'root-cert.pem'), 'utf8'),
  };
}

/** A TLS connection that sends HTTP/1.1 requests one at a time over the same connection. */
export interface TlsHttpConnection {
  get(path: string): Promise<number>;
  close(): void;
}

/** Opens an mTLS connection presenting `cert`; rejects if the handshake fails (e.g. the peer refuses a revoked certificate). */
export function openMtls(host: string, port: number, cert: ClientCert, timeoutMs = 3_000): Promise<TlsHttpConnection> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      key: cert.key,
      cert: cert.cert,
      ca: cert.ca,
      checkServerIdentity: () => undefined,
      servername: 'mesh',
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('tls connect timed out'));
    }, timeoutMs);
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve({
        get: (path) =>
          new Promise<number>((res, rej) => {
            let buf = '';
            const onData = (d: Buffer) => {
              buf += d.toString('latin1');
              const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
              // Wait for the full response: headers and a Content-Length body.
              const head = buf.indexOf('\r\n\r\n');
              const len = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? 0);
              if (m && head >= 0 && buf.length >= head + 4 + len) {
                socket.off('data', onData);
                socket.off('error', onErr);
                res(Number(m[1]));
              }
            };
            const onErr = (e: Error) => {
              socket.off('data', onData);
              rej(e);
            };
            socket.on('data', onData);
            socket.once('error', onErr);
            socket.write(`GET ${path} HTTP/1.1\r\nHost: mesh\r\n\r\n`);
          }),
        close: () => socket.destroy(),
      });
    });
  });
}

/** One request on a fresh mTLS connection: the status, or the error code/message when the handshake or request fails. */
export async function mtlsGetOnce(host: string, port: number, cert: ClientCert): Promise<number | string> {
  try {
    const c = await openMtls(host, port, cert);
    try {
      return await c.get('/');
    } finally {
      c.close();
    }
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}
