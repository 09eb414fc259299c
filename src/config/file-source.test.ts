import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshModel } from '../model/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { bootSettingChanges, createFileConfigSource, type ConfigSource } from './index.js';
import type { ChangeSet } from '../model/index.js';

const sa = (name: string): string => `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n`;

// Editors and `mv` replace a file rather than write it in place: do the same.
async function replace(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.hrtime.bigint()}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Resolves with the next model the source delivers, or rejects after timeoutMs. */
function nextModel(deliveries: MeshModel[], timeoutMs = 3000): Promise<MeshModel> {
  const seen = deliveries.length;
  return eventually(() => deliveries[seen], timeoutMs, 'no model delivered');
}

async function eventually<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('createFileConfigSource', () => {
  let dir: string;
  let source: ConfigSource | undefined;
  const log = createRecordingLogger();

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshpilot-source-'));
    log.lines.length = 0;
  });
  afterEach(async () => {
    source?.close();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers the current model, each valid change, rejects a bad one and recovers', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, sa('a'));
    source = createFileConfigSource({ paths: [dir], log, debounceMs: 20, maxDelayMs: 200 });
    await source.ready();
    const deliveries: MeshModel[] = [];
    source.subscribe((m) => deliveries.push(m));
    assert.equal(deliveries.length, 1, 'current model delivered on subscribe');
    assert.deepEqual(
      deliveries[0]?.serviceAccounts.map((s) => s.name),
      ['a'],
    );

    let next = nextModel(deliveries);
    await replace(file, sa('a') + '---\n' + sa('b'));
    const second = await next;
    assert.deepEqual(
      second.serviceAccounts.map((s) => s.name),
      ['a', 'b'],
    );
    assert.equal(source.current(), second);

    // Invalid: rejected with its diagnostics, the last good model stays.
    await replace(file, sa('a') + '---\n' + sa('B_bad'));
    const rejected = await eventually(() => log.lines.find((l) => l.msg === 'config rejected'), 3000, 'rejection logged');
    assert.deepEqual(rejected.fields, {
      file,
      line: 9,
      column: 9,
      path: 'metadata.name',
      message: "'B_bad' is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    });
    assert.equal(source.current(), second);
    assert.equal(source.lastDiagnostics().length, 1);
    assert.equal(deliveries.length, 2);

    next = nextModel(deliveries);
    await replace(file, sa('a') + '---\n' + sa('c'));
    const fixed = await next;
    assert.deepEqual(
      fixed.serviceAccounts.map((s) => s.name),
      ['a', 'c'],
    );
    assert.deepEqual(source.lastDiagnostics(), []);
  });

  it('does not re-deliver a model with the same version', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, sa('a'));
    source = createFileConfigSource({ paths: [file], log, debounceMs: 20 });
    await source.ready();
    const deliveries: MeshModel[] = [];
    source.subscribe((m) => deliveries.push(m));
    await replace(file, `# only a comment changed\n${sa('a')}`);
    await eventually(() => log.lines.find((l) => l.msg === 'config unchanged'), 3000, 'reload of equal content');
    assert.equal(deliveries.length, 1);
  });

  it('watches a single file through atomic replaces and coalesces a burst of changes', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(join(dir, 'other.yaml'), 'not: [valid');
    await writeFile(file, sa('a'));
    source = createFileConfigSource({ paths: [file], log, debounceMs: 100, maxDelayMs: 2000 });
    await source.ready();
    const deliveries: MeshModel[] = [];
    source.subscribe((m) => deliveries.push(m));
    const next = nextModel(deliveries);
    for (const name of ['b', 'c', 'd', 'e']) await replace(file, sa(name));
    const model = await next;
    assert.deepEqual(
      model.serviceAccounts.map((s) => s.name),
      ['e'],
    );
    assert.equal(log.lines.filter((l) => l.msg === 'config accepted').length, 2, 'initial load and one reload');
  });

  it('reloads within the hard cap while changes keep coming', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, sa('a'));
    source = createFileConfigSource({ paths: [dir], log, debounceMs: 100, maxDelayMs: 150 });
    await source.ready();
    const deliveries: MeshModel[] = [];
    source.subscribe((m) => deliveries.push(m));
    // Changes every 20 ms never leave a 100 ms quiet period: only the cap can trigger a reload.
    const started = Date.now();
    let n = 0;
    while (deliveries.length < 2 && Date.now() - started < 3000) {
      await replace(file, sa(`s${n++}`));
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(deliveries.length, 2, 'a model was delivered during the burst');
  });

  it('reads namespace-less documents into defaultNamespace (serve --namespace) and logs skipped kinds as warnings', async () => {
    await writeFile(join(dir, 'mesh.yaml'), `${sa('a')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\n`);
    source = createFileConfigSource({ paths: [dir], log, debounceMs: 20, defaultNamespace: 'foo' });
    await source.ready();
    assert.ok(source.current()?.serviceAccount('foo', 'a'));
    assert.ok(
      log.lines.some((l) => l.level === 'warn' && l.msg === 'config warning' && /skipped Deployment web/.test(String(l.fields?.message))),
    );
  });

  it('reports the first load when it is invalid, then delivers once fixed', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, 'kind: Nope\n');
    source = createFileConfigSource({ paths: [dir], log, debounceMs: 20 });
    await source.ready();
    assert.equal(source.current(), undefined);
    assert.equal(source.lastDiagnostics()[0]?.path, 'kind');
    const deliveries: MeshModel[] = [];
    source.subscribe((m) => deliveries.push(m));
    assert.equal(deliveries.length, 0);
    const next = nextModel(deliveries);
    await replace(file, sa('a'));
    assert.equal((await next).serviceAccounts.length, 1);
  });

  it('stops watching and delivering after close', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, sa('a'));
    const debounceMs = 20;
    source = createFileConfigSource({ paths: [dir], log, debounceMs });
    await source.ready();
    const deliveries: MeshModel[] = [];
    source.subscribe((m) => deliveries.push(m));
    source.close();
    await replace(file, sa('b'));
    // Nothing can arrive once closed; wait a few debounce periods to give a leak the chance to show.
    await new Promise((r) => setTimeout(r, debounceMs * 5));
    assert.equal(deliveries.length, 1);
    assert.equal(log.lines.filter((l) => l.msg === 'config accepted').length, 1);
    assert.throws(() => source?.subscribe(() => {}), /closed/);
  });

  it('keeps delivering to other subscribers when one throws', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, sa('a'));
    source = createFileConfigSource({ paths: [dir], log, debounceMs: 20 });
    await source.ready();
    source.subscribe(() => {
      throw new Error('boom');
    });
    const deliveries: MeshModel[] = [];
    const unsubscribe = source.subscribe((m) => deliveries.push(m));
    assert.equal(deliveries.length, 1);
    assert.ok(log.lines.some((l) => l.msg === 'config subscriber failed' && l.fields.error === 'boom'));
    unsubscribe();
    await replace(file, sa('b'));
    await eventually(() => log.lines.filter((l) => l.msg === 'config accepted')[1], 3000, 'second model accepted');
    assert.equal(deliveries.length, 1);
  });
  it('delivers what changed since the model it delivered before', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, sa('a'));
    source = createFileConfigSource({ paths: [file], log, debounceMs: 10 });
    await source.ready();
    const changes: ChangeSet[] = [];
    const deliveries: MeshModel[] = [];
    source.subscribe((m, c) => {
      deliveries.push(m);
      changes.push(c);
    });
    assert.equal(changes[0]!.fromVersion, undefined, 'the first delivery is everything');
    const next = nextModel(deliveries);
    await replace(file, sa('a') + '---\n' + sa('b'));
    await next;
    assert.deepEqual(
      changes[1]!.changes.map((c) => `${c.op} ${c.kind} ${c.name}`),
      ['added ServiceAccount b'],
    );
  });

  it('refuses a change to a setting read at start, naming the field, and keeps the last good config', async () => {
    const mesh = (td: string) =>
      `apiVersion: meshpilot.io/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  trustDomain: ${td}\n`;
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, mesh('a.example'));
    const started: { model?: MeshModel } = {};
    source = createFileConfigSource({
      paths: [file],
      log,
      debounceMs: 10,
      admit: (next) => (started.model ? bootSettingChanges(started.model.settings, next) : []),
    });
    await source.ready();
    started.model = source.current();
    assert.equal(started.model?.settings.trustDomain, 'a.example');
    await replace(file, mesh('b.example'));
    const refusal = await eventually(
      () => source!.lastDiagnostics().find((d) => d.path === 'MeshConfig.spec.trustDomain'),
      3000,
      'the refusal',
    );
    assert.equal(refusal.severity, 'error');
    assert.match(refusal.message, /read at start \(running: a\.example, config: b\.example\); restart meshpilot/);
    assert.equal(refusal.file, file);
    assert.ok(refusal.line !== undefined && refusal.line > 0);
    assert.equal(source.current()?.settings.trustDomain, 'a.example', 'the last good config stays');
  });
});
