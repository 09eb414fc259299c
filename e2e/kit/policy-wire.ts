// Clients for policy e2e tests that put exactly the bytes a test names on the wire: a raw HTTP/1.1
// request over plain TCP (to a sidecar's outbound listener, or straight to a PERMISSIVE inbound
// port as a workload without a sidecar), and a TCP probe that tells an echoed byte from a refusal.
// Node's http client normalizes some request targets (and refuses others), so none is used here.
import net from 'node:net';
import tls from 'node:tls';

/** Client TLS for a raw request straight to a sidecar's inbound port: an SVID, the mesh roots, and the server's expected SPIFFE ID. */
export interface RawTls {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
  /** The URI SAN the server must present (secure naming, as a client sidecar checks it). */
  readonly serverId: string;
}

/** A request as it is written on the wire: the request target is sent byte for byte. */
export interface RawRequest {
  readonly host: string;
  readonly port: number;
  /** Bind the client socket to this address (the caller's own loopback address). */
  readonly localAddress?: string;
  readonly method?: string;
  /** The request target exactly as written in the request line (`/a/../b`, `/a%2Fb`, `/a#f`, `/a\\b`). */
  readonly target: string;
  /** Headers in order; a name may repeat. `Host` is sent only as listed. */
  readonly headers: readonly (readonly [string, string])[];
  readonly timeoutMs?: number;
  /** Speak mTLS with this identity instead of plain TCP. */
  readonly tls?: RawTls;
}

/** A parsed response; headers are lowercased, repeated names joined with `, `. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** The exact bytes of a request: request line, headers in order, `Connection: close`, empty body. */
export function rawRequestBytes(r: RawRequest): Buffer {
  const lines = [`${r.method ?? 'GET'} ${r.target} HTTP/1.1`, ...r.headers.map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''];
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (let guard = 0; guard < 100_000 && at < body.length; guard++) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** Parses one HTTP/1.1 response read to the end of the connection. */
export function parseRawResponse(buf: Buffer): RawResponse {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`incomplete HTTP response (${buf.length} bytes): ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const colon = l.indexOf(':');
    if (colon <= 0) continue;
    const k = l.slice(0, colon).trim().toLowerCase();
    const v = l.slice(colon + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  let body = buf.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

/** Sends one raw request on a fresh connection and reads the response until the server closes it. */
export function rawHttp(r: RawRequest): Promise<RawResponse> {
  const timeoutMs = r.timeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const local = r.localAddress ? { localAddress: r.localAddress } : {};
    const t = r.tls;
    const socket = t
      ? tls.connect({
          host: r.host,
          port: r.port,
          ...local,
          cert: t.certPem,
          key: t.keyPem,
          ca: t.caPem,
          checkServerIdentity: (_host, cert) =>
            cert.subjectaltname?.split(', ').includes(`URI:${t.serverId}`)
              ? undefined
              : new Error(`server presented ${cert.subjectaltname ?? 'no SAN'}, not ${t.serverId}`),
        })
      : net.connect({ host: r.host, port: r.port, ...local });
    const timer = setTimeout(
      () => socket.destroy(new Error(`raw ${r.target} to ${r.host}:${r.port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    // Not end(): Envoy's HCM treats a half-closed downstream as gone. `Connection: close` ends the exchange.
    socket.once(t ? 'secureConnect' : 'connect', () => socket.write(rawRequestBytes(r)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) return;
      try {
        resolve(parseRawResponse(Buffer.concat(chunks)));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/**
 * Whether a raw request failed because the server accepted the connection and then closed or reset
 * it without an answer (a TLS-only listener meeting plaintext), rather than because nothing listens.
 */
export function closedWithoutAnswer(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException;
  return err.code === 'ECONNRESET' || err.code === 'EPIPE' || /incomplete HTTP response \(0 bytes\)/.test(err.message ?? '');
}

/** What a TCP probe saw: its payload echoed back, or the connection closed (or reset) without it. */
export type TcpOutcome = 'echoed' | 'refused';

/**
 * Connects, writes `payload`, and waits for it to come back. A proxy that refuses the connection
 * (network RBAC) closes it without a byte; a connection still open at the deadline is an error,
 * not a verdict.
 */
export function tcpProbe(o: {
  host: string;
  port: number;
  localAddress?: string;
  payload: string;
  timeoutMs?: number;
}): Promise<TcpOutcome> {
  const timeoutMs = o.timeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    let got = '';
    let done = false;
    const socket = net.connect({ host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const finish = (v: TcpOutcome | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    const timer = setTimeout(
      () => finish(new Error(`tcp probe ${o.host}:${o.port}: no echo and no close within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(o.payload));
    socket.on('data', (c: Buffer) => {
      got += c.toString('utf8');
      if (got === o.payload) finish('echoed');
    });
    // A connection that was accepted and then reset is a refusal; ECONNREFUSED (no listener at all) is an error.
    socket.once('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'refused' : e));
    socket.once('close', () => finish(got === o.payload ? 'echoed' : 'refused'));
  });
}
