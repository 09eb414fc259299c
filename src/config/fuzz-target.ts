// The config loader under fuzzing (make fuzz; a short run in make test): mutated Istio-style
// YAML must never crash the loader, and whatever it refuses it says why (an error diagnostic
// naming the file). Seeds are the golden inputs and the photo app example.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mutateText, type FuzzTarget } from '../fuzz/index.js';
import { parseConfigText } from './build-model.js';

const FILE = 'fuzz.yaml';
const repo = fileURLToPath(new URL('../../../', import.meta.url));

// YAML syntax that parsers get wrong (aliases, merge keys, tags, flow collections, document
// markers, odd scalars) and the words of meshpilot's kinds, so mutations reach the validators.
const DICTIONARY = [
  '&a ',
  '*a',
  '<<: *a\n',
  '!!str ',
  '!!binary ',
  '!!map ',
  '!custom ',
  '? ',
  '- ',
  ': ',
  '{',
  '}',
  '[',
  ']',
  ',',
  '\n---\n',
  '\n...\n',
  '"',
  "'",
  '#',
  '\t',
  '|\n',
  '>-\n',
  '~',
  'null',
  '.inf',
  '-.nan',
  '0x1F',
  '1e309',
  '-0',
  '0o17',
  'true',
  'yes',
  '2001-12-14t21:59:43.10-05:00',
  '"\\u0000"',
  '"\\ud800"',
  '\u00a0',
  '\ufeff',
  'a'.repeat(300),
  'apiVersion: ',
  'kind: ',
  'metadata: ',
  'name: ',
  'namespace: ',
  'spec: ',
  'selector: ',
  'matchLabels: ',
  'labels: ',
  'ports: ',
  'port: ',
  'targetPort: ',
  'address: ',
  'serviceAccount: ',
  'rules: ',
  'from: ',
  'to: ',
  'when: ',
  'principals: ',
  'paths: ',
  'methods: ',
  'action: ',
  'mtls: ',
  'mode: ',
  'portLevelMtls: ',
  'jwtRules: ',
  'issuer: ',
  'jwksUri: ',
  'jwks: ',
  'trustDomain: ',
  'rootNamespace: ',
  'certTtl: ',
  'ServiceAccount',
  'Service',
  'WorkloadEntry',
  'PeerAuthentication',
  'AuthorizationPolicy',
  'RequestAuthentication',
  'MeshConfig',
  'List',
  'DestinationRule',
  'v1',
  'security.istio.io/v1',
  'networking.istio.io/v1',
  'meshpilot.io/v1alpha1',
  'STRICT',
  'PERMISSIVE',
  'DISABLE',
  'ALLOW',
  'DENY',
  'AUDIT',
  'CUSTOM',
  '127.0.0.1',
  '::1',
  '999.1.1.1',
  '65536',
  '-1',
  '0',
  'spiffe://cluster.local/ns/a/sa/b',
  '*',
  '{*}',
  '{**}',
  'cluster.local/ns/istio-system/sa/meshpilot',
  'istio-system',
  'photo-ns',
  'http-web',
  'tcp-db',
];

function seedFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return seedFiles(p);
    return /\.in\.ya?ml$|\.ya?ml$/.test(f) && !f.endsWith('.out.yaml') ? [p] : [];
  });
}

/** The config loader as a fuzz target. */
export const target: FuzzTarget<string> = {
  async seeds() {
    const files = [...seedFiles(join(repo, 'src/config/testdata')), ...seedFiles(join(repo, 'examples/photo-app'))];
    return files.map((f) => readFileSync(f, 'utf8')).filter((t) => t.length < 64 * 1024);
  },
  generate(seeds, rng) {
    // Now and then two seeds glued together: cross-document references and duplicates.
    const base = rng.chance(0.1) ? `${rng.pick(seeds)}\n---\n${rng.pick(seeds)}` : rng.pick(seeds);
    return mutateText(base, rng, DICTIONARY);
  },
  check(text) {
    const r = parseConfigText(text, FILE);
    for (const d of r.diagnostics) {
      if (typeof d.message !== 'string' || d.message.trim() === '') throw new Error(`a diagnostic without a message: ${JSON.stringify(d)}`);
      if (d.file !== FILE) throw new Error(`a diagnostic names ${JSON.stringify(d.file)}, not the file: ${JSON.stringify(d)}`);
      if (d.line !== undefined && !(Number.isInteger(d.line) && d.line >= 1))
        throw new Error(`a diagnostic with line ${d.line}: ${JSON.stringify(d)}`);
    }
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (r.model === undefined) {
      if (errors.length === 0) throw new Error(`refused without an error diagnostic: ${JSON.stringify(r.diagnostics)}`);
      return 'rejected';
    }
    if (errors.length > 0) throw new Error(`a model despite errors: ${JSON.stringify(errors.slice(0, 3))}`);
    return 'accepted';
  },
  describe: (text) => JSON.stringify(text.length > 4000 ? `${text.slice(0, 4000)}…` : text),
};
