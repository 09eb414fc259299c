import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSelectorIndex } from '../model/index.js';
import { CONFIG_LIMITS, DEFAULT_CONFIG_LIMITS, loadConfig, parseConfigText, type ConfigDiagnostic } from './index.js';

// An AuthorizationPolicy whose rules, sources and principals are each `n` uses of one alias:
// n³ principals from a file of a few KB (the 11 KB file used n = 250).
function aliasBomb(n: number): string {
  const uses = (alias: string) => `[${Array.from({ length: n }, () => `*${alias}`).join(', ')}]`;
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: bomb
  namespace: default
spec:
  action: ALLOW
  rules:
    - &r
      from:
        - &f
          source:
            principals:
              - &p cluster.local/ns/default/sa/a
              - ${uses('p').slice(1, -1).replaceAll(', ', '\n              - ')}
        - ${uses('f').slice(1, -1).replaceAll(', ', '\n        - ')}
    - ${uses('r').slice(1, -1).replaceAll(', ', '\n    - ')}
`;
}

function errorsOf(diagnostics: readonly ConfigDiagnostic[]): ConfigDiagnostic[] {
  return diagnostics.filter((d) => d.severity === 'error');
}

function assertRefused(diagnostics: readonly ConfigDiagnostic[], limit: string, file: string, line: number): void {
  const errors = errorsOf(diagnostics);
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0]!.file, file);
  assert.equal(errors[0]!.line, line);
  assert.match(errors[0]!.message, new RegExp(`\\b${limit}=`));
}

const serviceAccounts = (n: number): string =>
  Array.from({ length: n }, (_, i) => `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-${i}\n`).join('---\n');

describe('config limits', () => {
  it('lists every limit with a positive default', () => {
    for (const [name, l] of Object.entries(CONFIG_LIMITS)) {
      assert.ok(l.default > 0, name);
      assert.equal(DEFAULT_CONFIG_LIMITS[name as keyof typeof DEFAULT_CONFIG_LIMITS], l.default);
    }
  });

  it('refuses aliases that expand to tens of thousands of principals, at the alias, quickly', () => {
    const t0 = performance.now();
    const r = parseConfigText(aliasBomb(40), 'bomb.yaml');
    assert.equal(r.model, undefined);
    // The list of 40 `*r` rules starts on line 56 (8 header lines, then 40 + 2 + 40 + 2 - 1 list items below `rules:`).
    const errors = errorsOf(r.diagnostics);
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(errors[0]!.message, /maxAliasExpansion=10000/);
    assert.equal(errors[0]!.file, 'bomb.yaml');
    assert.ok(errors[0]!.line! > 8);
    assert.ok(performance.now() - t0 < 5000, 'refused before expanding');
  });

  it('accepts a few aliases, and the same bomb when the operator raises the limit', () => {
    const r = parseConfigText(aliasBomb(3), 'small.yaml');
    assert.deepEqual(errorsOf(r.diagnostics), []);
    assert.equal(r.model?.authorizationPolicies[0]?.rules.length, 4);
    const raised = parseConfigText(aliasBomb(12), 'raised.yaml', { limits: { maxAliasExpansion: 1_000_000 } });
    assert.deepEqual(errorsOf(raised.diagnostics), []);
  });

  it('refuses an alias that contains itself', () => {
    const r = parseConfigText('apiVersion: v1\nkind: ServiceAccount\nmetadata: &m\n  name: a\n  labels: *m\n', 'loop.yaml');
    assert.equal(r.model, undefined);
    const errors = errorsOf(r.diagnostics);
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(errors[0]!.message, /alias \*m refers to a node that contains it/);
    assert.equal(errors[0]!.line, 5);
  });

  it('refuses nesting deeper than maxDepth', () => {
    const deep = `${'['.repeat(70)}${']'.repeat(70)}`;
    const r = parseConfigText(`apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  labels:\n    x: ${deep}\n`, 'deep.yaml');
    assert.equal(r.model, undefined);
    assertRefused(r.diagnostics, 'maxDepth', 'deep.yaml', 6);
  });

  it('counts the depth of aliased nodes where they are used', () => {
    const deep = (n: number, inner: string) => `${'['.repeat(n)}${inner}${']'.repeat(n)}`;
    const text = `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  labels:\n    x: &x ${deep(40, '1')}\n    y: ${deep(30, '*x')}\n`;
    const r = parseConfigText(text, 'deep-alias.yaml');
    assert.equal(r.model, undefined);
    assertRefused(r.diagnostics, 'maxDepth', 'deep-alias.yaml', 7);
  });

  it('refuses a string longer than maxStringLength', () => {
    const long = 'a'.repeat(DEFAULT_CONFIG_LIMITS.maxStringLength + 1);
    const r = parseConfigText(`apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  labels:\n    x: "${long}"\n`, 'long.yaml');
    assertRefused(r.diagnostics, 'maxStringLength', 'long.yaml', 6);
  });

  it('refuses more documents than maxDocumentsPerFile, at the first one too many', () => {
    const r = parseConfigText(serviceAccounts(4), 'many.yaml', { limits: { maxDocumentsPerFile: 3 } });
    // Each document is 4 lines and a separator: the fourth starts at the `---` on line 15.
    assertRefused(r.diagnostics, 'maxDocumentsPerFile', 'many.yaml', 15);
    assert.equal(
      parseConfigText(serviceAccounts(3), 'three.yaml', { limits: { maxDocumentsPerFile: 3 } }).model?.serviceAccounts.length,
      3,
    );
  });

  it('refuses a file over maxFileBytes, from its size on disk, before reading it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshpilot-limits-'));
    try {
      const file = join(dir, 'big.yaml');
      await writeFile(file, serviceAccounts(20));
      const r = await loadConfig([file], { limits: { maxFileBytes: 100 } });
      assertRefused(r.diagnostics, 'maxFileBytes', file, 1);
      assert.ok((await loadConfig([file])).model);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('loads 140,000 ServiceAccounts from one file without overflowing the stack', function () {
    this.timeout(120_000);
    const r = parseConfigText(serviceAccounts(140_000), 'accounts.yaml');
    assert.deepEqual(errorsOf(r.diagnostics), []);
    assert.equal(r.model?.serviceAccounts.length, 140_000);
  });
});

describe('selector index', () => {
  it('selects each of n services from n workloads with about n label reads, not n²', () => {
    let reads = 0;
    const n = 2000;
    const workloads = Array.from({ length: n }, (_, i) => ({
      namespace: `ns-${i % 10}`,
      labels: { app: `app-${i}`, tier: 'backend' },
    }));
    const index = createSelectorIndex(
      workloads,
      (w) => w.namespace,
      (w) => {
        reads++;
        return w.labels;
      },
    );
    for (let i = 0; i < n; i++) {
      const picked = index.select(`ns-${i % 10}`, { app: `app-${i}`, tier: 'backend' });
      assert.deepEqual(picked, [workloads[i]]);
    }
    assert.ok(reads <= 3 * n, `${reads} label reads`);
    assert.deepEqual(index.select('ns-0', {}), []);
    assert.deepEqual(index.select('ns-1', { app: 'app-0' }), []);
  });
});
