import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../config/index.js';
import { formatDiagnostic } from '../lib/index.js';
import { applicationProtocol, workloadPortFor, type MeshModel } from '../model/index.js';
import { compileInboundPolicy, evaluate, type AuthzRequest, type JwtClaims } from './index.js';

// The Istio corpus: resources from istio/istio's samples and tests and istio.io's task pages, each
// file naming its source and licence. Each <case>.yaml has a <case>.expect.yaml beside it that
// records what loading it alone gives (written by UPDATE_GOLDEN=1) and, by hand, the verdicts the
// Istio page documents, checked against mesh.meshpilot.yaml's workloads with the evaluator.
const corpus = fileURLToPath(new URL('../../../src/config/testdata/istio-corpus/', import.meta.url));
const MESH = join(corpus, 'mesh.meshpilot.yaml');

interface Check {
  readonly doc: string;
  readonly destination: string;
  readonly port?: number;
  /** `<namespace>/<service-account>` of the caller (mTLS); absent for a plaintext caller. */
  readonly source?: string;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly jwt?: JwtClaims | 'invalid';
  readonly expect: 'allow' | 'deny';
  readonly status?: number;
  readonly dryRun?: readonly string[];
  /** Whether a CUSTOM policy sends the request to its external authorizer first. */
  readonly externalAuthz?: boolean;
}

interface Expect {
  readonly namespace?: string;
  readonly alone?: unknown;
  readonly checks?: readonly Check[];
}

const cases = readdirSync(corpus)
  .filter((n) => n.endsWith('.yaml') && !n.endsWith('.expect.yaml') && n !== 'mesh.meshpilot.yaml')
  .sort();

function decide(model: MeshModel, c: Check): ReturnType<typeof evaluate> {
  const [ns, name] = c.destination.split('/');
  const w = model.workload(ns!, name!);
  assert.ok(w, `no workload ${c.destination}`);
  const ports = model.servicesOf(w).flatMap((s) => s.ports);
  const sp = c.port === undefined ? ports[0] : ports.find((p) => p.port === c.port);
  assert.ok(sp, `no port ${c.port} on ${c.destination}`);
  const a = applicationProtocol(sp);
  const protocol = a === 'tcp' || a === 'tls' ? 'tcp' : 'http';
  const compiled = compileInboundPolicy(model, w, workloadPortFor(sp, w), protocol, () => undefined);
  const [sns, ssa] = c.source?.split('/') ?? [];
  const req: AuthzRequest = {
    port: sp.port,
    ...(c.source ? { sourcePrincipal: `spiffe://${model.settings.trustDomain}/ns/${sns}/sa/${ssa}` } : {}),
    ...(protocol === 'http' ? { method: c.method ?? 'GET', path: c.path ?? '/', headers: Object.entries(c.headers ?? {}) } : {}),
    ...(c.jwt !== undefined ? { jwt: c.jwt } : {}),
  };
  return evaluate(compiled, req);
}

describe('Istio corpus', () => {
  for (const file of cases) {
    const name = file.replace(/\.yaml$/, '');
    const expectFile = join(corpus, `${name}.expect.yaml`);
    const expected = parse(readFileSync(expectFile, 'utf8')) as Expect;
    const opts = expected.namespace !== undefined ? { defaultNamespace: expected.namespace } : {};

    it(`${name}: loads, or is skipped or refused, exactly as recorded`, async () => {
      const r = await loadConfig([join(corpus, file)], opts);
      const alone = {
        model: r.model !== undefined,
        diagnostics: r.diagnostics.map((d) => ({
          at: `${relative(corpus, d.file)}:${d.line}:${d.column}`,
          severity: d.severity,
          path: d.path,
          message: d.message,
        })),
      };
      if (process.env.UPDATE_GOLDEN) writeFileSync(expectFile, stringify({ ...expected, alone }, { lineWidth: 0 }));
      else assert.deepEqual(alone, expected.alone);
    });

    if (!expected.checks) continue;
    it(`${name}: the verdicts Istio documents`, async () => {
      const r = await loadConfig([MESH, join(corpus, file)], opts);
      assert.ok(r.model, r.diagnostics.map(formatDiagnostic).join('\n'));
      for (const c of expected.checks!) {
        const d = decide(r.model, c);
        assert.equal(d.verdict, c.expect, `${c.doc}: ${d.reason}`);
        if (c.status !== undefined) assert.equal(d.status, c.status, c.doc);
        assert.deepEqual(d.dryRun, c.dryRun ?? [], c.doc);
        if (c.externalAuthz !== undefined) assert.equal(d.externalAuthz !== undefined, c.externalAuthz, c.doc);
      }
    });
  }
});
