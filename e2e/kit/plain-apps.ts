// Unmodified apps for capture-mode tests: they know nothing of the mesh, so whatever reaches them
// (or not) is the sidecar's doing. Run inside a test network namespace with `node -e`.
import type { TestHost } from './netns.js';

/** A server outside the mesh: `node -e SERVER_APP <name> <port>...`; answers with who it is and which Host it was asked for. */
export const SERVER_APP = `
const http = require('node:http');
const [name, ...ports] = process.argv.slice(1);
let up = 0;
for (const port of ports)
  http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ server: name, port: Number(port), host: req.headers.host }));
  }).listen(Number(port), '0.0.0.0', () => { if (++up === ports.length) console.log('listening'); });`;

// A plain http.get by URL, names resolved through /etc/hosts; prints one JSON line.
const CLIENT_APP = `
const http = require('node:http');
const req = http.get(process.argv[1], { timeout: 4000 }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body })));
});
req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
req.on('error', (e) => console.log(JSON.stringify({ error: e.code || e.message })));`;

/** What the plain client saw: a status and body, or an error code (ECONNRESET, TIMEOUT, ...). */
export interface Answer {
  status?: number;
  error?: string;
  body?: string;
}

/** Runs the plain client in `host`'s namespace against `url`. */
export async function plainGet(host: TestHost, url: string): Promise<Answer> {
  const r = await host.exec([process.execPath, '-e', CLIENT_APP, url], { timeoutMs: 10_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || line === '') throw new Error(`client in ${host.ns} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(line) as Answer;
}
