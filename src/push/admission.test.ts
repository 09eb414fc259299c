import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sidecarBootstrap } from '../bootstrap/index.js';
import { parseConfigText } from '../config/index.js';
import { sidecarNodeId } from '../generate/index.js';
import { admitProxy, interceptionOf } from './admission.js';

const mesh = readFileSync(fileURLToPath(new URL('../../../examples/photo-app/mesh.yaml', import.meta.url)), 'utf8');

describe('admission: interception mode', () => {
  const model = parseConfigText(mesh, 'mesh.yaml').model!;
  const nodeId = sidecarNodeId('127.0.0.12', 'photo-backend', 'photo-ns', 'cluster.local');
  const identity = 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend';

  it('reads capture from INTERCEPTION_MODE REDIRECT, as the bootstrap of --capture sets it', () => {
    const b = sidecarBootstrap({ nodeId, cluster: 'photo-backend', xdsHost: '10.231.7.1', xdsPort: 15012, capture: true });
    const node = b.node as { metadata: Record<string, unknown> };
    assert.deepEqual(node.metadata, { INTERCEPTION_MODE: 'REDIRECT' });
    assert.deepEqual(b.admin, { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } });
    const a = admitProxy(model, { nodeId, identity, metadata: node.metadata });
    assert.ok(a.ok && a.value.capture);
  });

  it('keeps loopback mode without the key or with NONE, and its bootstrap unchanged', () => {
    const b = sidecarBootstrap({ nodeId, cluster: 'photo-backend', xdsHost: '127.0.0.1', xdsPort: 15012 });
    assert.equal((b.node as { metadata?: unknown }).metadata, undefined);
    assert.deepEqual(b.admin, { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } });
    for (const metadata of [undefined, {}, { INTERCEPTION_MODE: 'NONE' }]) {
      const a = admitProxy(model, { nodeId, identity, metadata });
      assert.ok(a.ok && !a.value.capture);
    }
  });

  it('refuses an interception mode it cannot serve', () => {
    const r = interceptionOf({ INTERCEPTION_MODE: 'TPROXY' });
    assert.ok(!r.ok);
    assert.match(r.error.reason, /INTERCEPTION_MODE "TPROXY" is not supported \(REDIRECT or NONE\)/);
  });

  it('refuses a loopback-mode proxy whose app listens on the service port (possible only in a capture mesh), and admits it captured', () => {
    const capture = parseConfigText(
      mesh
        .replaceAll('targetPort: 8080', 'targetPort: 9080')
        .replace('trustDomain: cluster.local', 'trustDomain: cluster.local\n  captureMode: iptables'),
      'mesh.yaml',
    ).model!;
    const loopback = admitProxy(capture, { nodeId, identity });
    assert.ok(!loopback.ok);
    assert.match(loopback.error.reason, /serves service photo-ns\/photo-backend port 9080 on the app's own port.*bootstrap --capture/);
    const captured = admitProxy(capture, { nodeId, identity, metadata: { INTERCEPTION_MODE: 'REDIRECT' } });
    assert.ok(captured.ok && captured.value.capture);
  });
});

describe('admission: certificate directory', () => {
  const model = parseConfigText(mesh, 'mesh.yaml').model!;
  const nodeId = sidecarNodeId('127.0.0.12', 'photo-backend', 'photo-ns', 'cluster.local');
  const identity = 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend';

  it('reads MESHPILOT_CERT_DIR, as the bootstrap of --cert-dir sets it, into a file secret source', () => {
    const certDir = '/var/run/secrets/meshpilot/photo-ns/photo-backend';
    const b = sidecarBootstrap({ nodeId, cluster: 'photo-backend', xdsHost: '127.0.0.1', xdsPort: 15012, certDir });
    const metadata = (b.node as { metadata: Record<string, unknown> }).metadata;
    assert.deepEqual(metadata, { MESHPILOT_CERT_DIR: certDir });
    const a = admitProxy(model, { nodeId, identity, metadata });
    assert.ok(a.ok);
    assert.deepEqual(a.value.source, { certDir });
  });

  it('refuses a relative path, one with .., odd characters, or both an agent and a directory', () => {
    for (const metadata of [
      { MESHPILOT_CERT_DIR: 'relative/dir' },
      { MESHPILOT_CERT_DIR: '/a/../b' },
      { MESHPILOT_CERT_DIR: '//' },
      { MESHPILOT_CERT_DIR: '/a"b' },
      { MESHPILOT_CERT_DIR: 7 },
      { MESHPILOT_CERT_DIR: '/a', MESHPILOT_SDS_CLUSTER: 'sds-grpc' },
    ]) {
      const a = admitProxy(model, { nodeId, identity, metadata });
      assert.ok(!a.ok, JSON.stringify(metadata));
      assert.match(a.error.reason, /MESHPILOT_CERT_DIR/);
    }
  });
});
