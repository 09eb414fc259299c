import http from 'node:http';

/** A request for {@link httpRequest}. */
export interface HttpRequestOptions {
  host: string;
  port: number;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Bound on the whole exchange, connect to last body byte; default 5 s. */
  timeoutMs?: number;
  /** Connection reuse; default `false` (a fresh connection per request). */
  agent?: http.Agent | false;
}

/** The answer from {@link httpRequest}; `json` is set when the body parses as JSON. */
export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json?: unknown;
}

/** Sends one HTTP/1.1 request and resolves with the whole response; rejects on network errors and on timeout. */
export function httpRequest(options: HttpRequestOptions): Promise<HttpResponse> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = Buffer.byteLength(options.body);
    const req = http.request({
      host: options.host,
      port: options.port,
      path: options.path ?? '/',
      method: options.method ?? 'GET',
      headers,
      agent: options.agent ?? false,
    });
    const timer = setTimeout(() => {
      req.destroy(
        new Error(`http ${options.method ?? 'GET'} ${options.host}:${options.port}${options.path ?? '/'} timed out after ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    req.once('error', fail);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', fail);
      res.once('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks).toString('utf8');
        const response: HttpResponse = { status: res.statusCode ?? 0, headers: res.headers, body };
        try {
          response.json = JSON.parse(body);
        } catch {
          // not JSON: leave json unset
        }
        resolve(response);
      });
    });
    req.end(options.body);
  });
}
