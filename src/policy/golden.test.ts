import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { parseConfigFiles } from '../config/index.js';
import { applicationProtocol, workloadPortFor, type MeshModel, type ServicePort } from '../model/index.js';
import { formatDiagnostic } from '../lib/index.js';
import { compileInboundPolicy, compilePeerAuthentication } from './index.js';
import { renderFilter } from './render.js';

// Golden pairs: testdata/<case>.in.yaml (a mesh config) → testdata/<case>.out.yaml: for every
// workload, its mTLS modes and, per Service port, the compiled filters and diagnostics.
// UPDATE_GOLDEN=1 rewrites the outputs.
const testdata = fileURLToPath(new URL('../../../src/policy/testdata/', import.meta.url));
const examples = fileURLToPath(new URL('../../../examples/', import.meta.url));

/** A JWKS the golden fetcher returns for URIs containing `good`; anything else has no keys yet. */
export const GOOD_JWKS =
  '{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}';
const fetchJwks = (uri: string) => (uri.includes('good') ? GOOD_JWKS : undefined);

function portProtocol(p: ServicePort): 'http' | 'tcp' {
  const a = applicationProtocol(p);
  return a === 'tcp' || a === 'tls' || a === 'mongo' || a === 'mysql' || a === 'redis' ? 'tcp' : 'http';
}

/** Compiles every workload of a model into the golden shape. */
export function compileAll(model: MeshModel): unknown {
  const out: Record<string, unknown> = {};
  for (const w of model.workloads) {
    const pa = compilePeerAuthentication(model, w);
    const ports: Record<string, unknown> = {};
    for (const svc of model.servicesOf(w)) {
      for (const sp of svc.ports) {
        const port = workloadPortFor(sp, w);
        const proto = portProtocol(sp);
        const c = compileInboundPolicy(model, w, port, proto, fetchJwks);
        ports[`${port}/${proto}`] = {
          mtls: c.mtlsMode,
          filters: [...c.httpFilters, ...c.networkFilters].map(renderFilter),
          diagnostics: c.diagnostics
            .filter((d) => !d.object.startsWith('PeerAuthentication '))
            .map((d) => `${d.severity}: ${formatDiagnostic(d)}`),
        };
      }
    }
    out[`${w.namespace}/${w.name}`] = {
      mtls: { default: pa.defaultMode, ports: pa.ports, from: pa.from },
      ...(pa.diagnostics.length > 0 ? { mtlsDiagnostics: pa.diagnostics.map((d) => `${d.severity}: ${formatDiagnostic(d)}`) } : {}),
      ports,
    };
  }
  return out;
}

function cases(): { name: string; inputs: string[]; out: string }[] {
  const fromTestdata = readdirSync(testdata)
    .filter((n) => n.endsWith('.in.yaml'))
    .sort()
    .map((n) => {
      const name = n.replace(/\.in\.yaml$/, '');
      return { name, inputs: [join(testdata, n)], out: join(testdata, `${name}.out.yaml`) };
    });
  const photo = {
    name: 'photo-app',
    inputs: ['mesh.yaml', 'policy.yaml'].map((f) => join(examples, 'photo-app', f)),
    out: join(testdata, 'photo-app.out.yaml'),
  };
  return [...fromTestdata, photo];
}

describe('policy golden cases', () => {
  for (const c of cases()) {
    it(c.name, () => {
      const texts = c.inputs.map((f) => ({
        fileName: f.replace(testdata, '').replace(examples, 'examples/'),
        text: readFileSync(f, 'utf8'),
      }));
      const loaded = parseConfigFiles(texts);
      assert.ok(loaded.model, `config does not load: ${loaded.diagnostics.map(formatDiagnostic).join('\n')}`);
      const actual = compileAll(loaded.model);
      if (process.env.UPDATE_GOLDEN) writeFileSync(c.out, stringify(actual, { lineWidth: 0 }));
      assert.deepEqual(actual, parse(readFileSync(c.out, 'utf8')));
    });
  }
});
