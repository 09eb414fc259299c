import http from 'node:http';
import net from 'node:net';

/** What {@link startHttpUpstream} answers with, as JSON, to every request. */
export interface UpstreamAnswer {
  server: string;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A running HTTP test server; see {@link startHttpUpstream}. */
export interface HttpUpstream {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Requests answered so far. */
  readonly requestCount: number;
  /** The most recent requests (up to 100), oldest first. */
  readonly requests: readonly UpstreamAnswer[];
  /** Stops listening and destroys open connections, keep-alive ones included; idempotent. */
  close(): Promise<void>;
}

const KEPT_REQUESTS = 100;

/** Starts an HTTP server on host (default 127.0.0.1) and a free or given port that echoes each request back as JSON. */
export async function startHttpUpstream(options: { name: string; host?: string; port?: number }): Promise<HttpUpstream> {
  const host = options.host ?? '127.0.0.1';
  const requests: UpstreamAnswer[] = [];
  let requestCount = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const answer: UpstreamAnswer = {
        server: options.name,
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requestCount++;
      requests.push(answer);
      if (requests.length > KEPT_REQUESTS) requests.shift();
      const payload = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    });
  });
  const port = await listen(server, host, options.port ?? 0);
  let closing: Promise<void> | undefined;
  return {
    name: options.name,
    host,
    port,
    get requestCount() {
      return requestCount;
    },
    get requests() {
      return requests;
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

/** A running TCP echo server; see {@link startTcpEcho}. */
export interface TcpEcho {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly connectionCount: number;
  /** Stops listening and destroys open connections; idempotent. */
  close(): Promise<void>;
}

/** Starts a TCP server on host (default 127.0.0.1) and a free or given port that writes back whatever it reads. */
export async function startTcpEcho(options: { host?: string; port?: number } = {}): Promise<TcpEcho> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();
  let connectionCount = 0;
  const server = net.createServer((socket) => {
    connectionCount++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  const port = await listen(server, host, options.port ?? 0);
  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    get connectionCount() {
      return connectionCount;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

async function listen(server: net.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`no TCP address for ${host}`);
  return address.port;
}
