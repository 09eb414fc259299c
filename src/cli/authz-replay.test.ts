import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/index.js';
import type { MeshModel } from '../model/index.js';
import { accessLogJsonFormat, parseAccessLogLine } from '../policy/index.js';
import { formatReplayReport, replayAccessLog } from './authz-replay.js';

const photo = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));

const DENY_ADMIN = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: backend-deny-admin, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-backend } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ['/admin/*'] } }]
`;

const FRONTEND = 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend';
const BACKEND = 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend';

function line(over: Record<string, unknown>): string {
  return JSON.stringify({
    destination_workload: 'photo-ns/photo-backend',
    destination_port: '9080',
    destination_ip: '127.0.0.12',
    source_principal: FRONTEND,
    source_ip: '127.0.0.11',
    remote_ip: '127.0.0.11',
    method: 'GET',
    path: '/',
    host: 'photo-backend',
    response_code: '200',
    response_code_details: 'via_upstream',
    ...over,
  });
}

describe('authz replay', () => {
  let dir: string;
  let proposed: MeshModel;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'replay-'));
    cpSync(photo, dir, { recursive: true });
    writeFileSync(join(dir, 'deny-admin.yaml'), DENY_ADMIN);
    const loaded = await loadConfig([dir]);
    assert.ok(loaded.model, JSON.stringify(loaded.diagnostics));
    proposed = loaded.model;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists exactly the recorded requests a new DENY blocks, with the deciding policy', () => {
    const log = [
      line({}),
      line({ path: '/admin/users' }),
      line({ path: '/admin/../admin/keys', method: 'POST' }),
      line({ path: '/photos/admin/x' }),
      // Already denied by the sidecar and still denied: not a change.
      line({
        destination_workload: 'datastore-ns/datastore',
        path: '/admin/x',
        response_code: '403',
        response_code_details: 'rbac_access_denied_matched_policy[none]',
      }),
      line({ destination_workload: 'datastore-ns/datastore', source_principal: BACKEND, path: '/admin/x' }),
    ];
    const r = replayAccessLog(proposed, log);
    assert.equal(r.evaluated, 6);
    assert.deepEqual(
      r.changed.map((c) => [c.line, c.request.path, c.proposed, c.decidedBy]),
      [
        [2, '/admin/users', 'deny', 'photo-ns/backend-deny-admin rule 0'],
        // Normalized as the inbound HCM does before RBAC sees it.
        [3, '/admin/../admin/keys', 'deny', 'photo-ns/backend-deny-admin rule 0'],
      ],
    );
    assert.deepEqual(r.malformed, []);
  });

  it('a policy that would open a refused request shows as DENY -> ALLOW', async () => {
    const loaded = await loadConfig([photo]);
    assert.ok(loaded.model);
    // Recorded under a config that refused the frontend; the example config allows it.
    const r = replayAccessLog(loaded.model, [
      line({ response_code: '403', response_code_details: 'rbac_access_denied_matched_policy[none]' }),
    ]);
    assert.equal(r.changed.length, 1);
    assert.equal(r.changed[0]!.proposed, 'allow');
    assert.match(r.changed[0]!.decidedBy, /photo-ns\/photo-backend-allow-frontend rule 0/);
  });

  it('counts malformed lines and unknown destinations, and still evaluates the rest', () => {
    const r = replayAccessLog(proposed, [
      'not json',
      '[1]',
      line({ destination_port: 'x' }),
      line({ destination_workload: 'nobody' }),
      line({ path: 'relative' }),
      '',
      line({ destination_workload: 'photo-ns/ghost' }),
      line({ destination_port: '9999' }),
      line({ path: '/admin/a' }),
    ]);
    assert.deepEqual(
      r.malformed.map((m) => m.line),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      r.unplaced.map((u) => u.line),
      [7, 8],
    );
    assert.equal(r.evaluated, 1);
    assert.equal(r.changed.length, 1);
    const text = formatReplayReport(r);
    assert.match(
      text,
      /^line 9: ALLOW -> DENY {2}spiffe:\/\/cluster\.local\/ns\/photo-ns\/sa\/photo-frontend -> photo-ns\/photo-backend:9080 GET \/admin\/a\n/,
    );
    assert.match(text, /1 evaluated, 1 would change, 5 malformed, 2 not in the config\n/);
    assert.match(text, /malformed line 1: not JSON/);
  });

  it('reads what the json_format it generates writes (Envoy writes "-" or null for absent values)', () => {
    const format = accessLogJsonFormat('photo-ns/photo-backend', ['x-user']);
    assert.deepEqual(Object.keys(format).sort(), [
      'destination_ip',
      'destination_port',
      'destination_workload',
      'headers',
      'host',
      'method',
      'path',
      'remote_ip',
      'response_code',
      'response_code_details',
      'source_ip',
      'source_principal',
    ]);
    const r = parseAccessLogLine(line({ source_principal: null, host: '-', headers: { 'X-User': 'ann', other: null } }));
    assert.ok(r.ok);
    assert.equal(r.value.sourcePrincipal, undefined);
    assert.equal(r.value.host, undefined);
    assert.deepEqual(r.value.headers, [['x-user', 'ann']]);
    assert.equal(r.value.recorded, 'allow');
  });
});
