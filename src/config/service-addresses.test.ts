import assert from 'node:assert/strict';
import { parseConfigText } from './index.js';
import { assignServiceVips, cidrContains, parseIpv4Cidr } from './service-vips.js';
import type { Service } from '../model/index.js';

const mesh = (spec: string) => `apiVersion: meshpilot.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n${spec}\n---\n`;
const sa = (ns: string, name: string) => `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${name}, namespace: ${ns}}\n---\n`;
const workload = (ns: string, name: string, address: string, sidecar = true, ports = '') =>
  `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ${name}, namespace: ${ns}}\n` +
  `spec:\n  address: ${address}\n  serviceAccount: ${name}\n  labels: {app: ${name}${sidecar ? ', security.istio.io/tlsMode: istio' : ''}}\n${ports}---\n`;
const service = (ns: string, name: string, port: string, clusterIP?: string) =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n` +
  `${clusterIP ? `  clusterIP: ${clusterIP}\n` : ''}  selector: {app: ${name}}\n  ports:\n    - ${port}\n---\n`;

const errors = (text: string) =>
  parseConfigText(text, 'mesh.yaml')
    .diagnostics.filter((d) => d.severity === 'error')
    .map((d) => `${d.line}:${d.path}: ${d.message}`);

function svc(namespace: string, name: string, clusterIP?: string): Service {
  return { namespace, name, labels: {}, ports: [], selector: { app: name }, ...(clusterIP ? { clusterIP } : {}) };
}

describe('service VIPs', () => {
  it('parses IPv4 CIDRs and refuses host bits, IPv6 and bad prefixes', () => {
    assert.deepEqual(parseIpv4Cidr('10.231.7.192/26'), { ok: true, value: { base: 0x0ae707c0, bits: 26 } });
    for (const bad of ['10.231.7.193/26', '::1/128', '10.0.0.0/33', '10.0.0.0', 'x/8']) assert.equal(parseIpv4Cidr(bad).ok, false, bad);
    const c = parseIpv4Cidr('10.231.7.192/26');
    assert.ok(c.ok);
    assert.ok(cidrContains(c.value, '10.231.7.255') && !cidrContains(c.value, '10.231.8.0'));
  });

  it('keeps clusterIPs, derives the rest from namespace/name, the same on every run, skipping taken addresses', () => {
    const services = [svc('a', 'one'), svc('a', 'two', '10.231.7.201'), svc('b', 'one'), svc('b', 'three')];
    const r1 = assignServiceVips(services, [], '10.231.7.200/29', undefined);
    const r2 = assignServiceVips([...services].reverse(), [], '10.231.7.200/29', undefined);
    assert.deepEqual(r1.problems, []);
    const vips = (r: typeof r1) => Object.fromEntries(r.services.map((s) => [`${s.namespace}/${s.name}`, s.vip]));
    assert.deepEqual(vips(r1), vips(r2), 'independent of input order');
    assert.equal(vips(r1)['a/two'], '10.231.7.201');
    const all = Object.values(vips(r1));
    assert.equal(new Set(all).size, 4, 'no address twice');
    // .200 is the network address and .207 the broadcast address of the /29.
    for (const v of all) assert.match(v ?? '', /^10\.231\.7\.20[1-6]$/);
  });

  it('reports a range too small for every service', () => {
    const r = assignServiceVips([svc('a', 'x'), svc('a', 'y'), svc('a', 'z')], [], '10.231.7.200/31', undefined);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]?.message ?? '', /serviceCidr 10\.231\.7\.200\/31 has no free address left for service a\/z/);
  });

  it('reports a clusterIP outside serviceCidr, used twice or held by a workload, with file, line and field', () => {
    const text =
      mesh('  serviceCidr: 10.231.7.192/26\n  captureMode: iptables') +
      sa('ns', 'w1') +
      sa('ns', 'w2') +
      sa('ns', 'w3') +
      workload('ns', 'w1', '10.231.7.11') +
      workload('ns', 'w2', '10.231.7.200') +
      workload('ns', 'w3', '10.231.7.13') +
      service('ns', 'w1', '{name: http, port: 80}', '10.231.8.1') +
      service('ns', 'w2', '{name: http, port: 80}', '10.231.7.200') +
      service('ns', 'w3', '{name: http, port: 80}', 'None');
    assert.deepEqual(errors(text), [
      '48:spec.clusterIP: 10.231.8.1 is outside serviceCidr 10.231.7.192/26',
      '57:spec.clusterIP: 10.231.7.200 is already the address of workload ns/w2',
      '66:spec.clusterIP: not supported: headless services (meshpilot services always have a virtual IP)',
    ]);
    const twice =
      mesh('  serviceCidr: 10.231.7.192/26') +
      sa('ns', 'w1') +
      workload('ns', 'w1', '127.0.0.11') +
      service('ns', 'w1', '{name: http, port: 80, targetPort: 8080}', '10.231.7.201') +
      service('ns', 'w1b', '{name: http, port: 80, targetPort: 8080}', '10.231.7.201').replace('{app: w1b}', '{app: w1}');
    assert.deepEqual(errors(twice), ['32:spec.clusterIP: 10.231.7.201 is already the address of service ns/w1']);
  });

  it('puts the VIP on the model service', () => {
    const text =
      mesh('  serviceCidr: 10.231.7.192/26') +
      sa('ns', 'w1') +
      workload('ns', 'w1', '127.0.0.11') +
      service('ns', 'w1', '{name: http, port: 80, targetPort: 8080}');
    const m = parseConfigText(text, 'mesh.yaml').model;
    assert.ok(m);
    const vip = m.service('ns', 'w1')?.vip ?? '';
    const c = parseIpv4Cidr('10.231.7.192/26');
    assert.ok(c.ok && cidrContains(c.value, vip), vip);
  });

  it('refuses a bad serviceCidr, captureMode or outbound policy mode', () => {
    assert.deepEqual(errors(mesh('  serviceCidr: 10.96.0.1/16\n  captureMode: ebpf\n  outboundTrafficPolicy: {mode: DENY}')), [
      "5:spec.serviceCidr: '10.96.0.1/16' has host bits set; write 10.96.0.0/16",
      '6:spec.captureMode: must be one of loopback, iptables, got ebpf',
      '7:spec.outboundTrafficPolicy.mode: must be one of ALLOW_ANY, REGISTRY_ONLY, got DENY',
    ]);
  });
});

describe('port == targetPort', () => {
  const base = sa('ns', 'web') + workload('ns', 'web', '127.0.0.11');
  it('is refused in loopback mode for a workload with a sidecar, naming the field and why', () => {
    const explicit = errors(base + service('ns', 'web', '{name: http, port: 9080, targetPort: 9080}'));
    assert.equal(explicit.length, 1);
    assert.match(
      explicit[0] ?? '',
      /^19:spec\.ports\[0\]\.targetPort: targetPort equals port 9080: in loopback mode .* reachable without its sidecar/,
    );
    const implicit = errors(base + service('ns', 'web', '{name: http, port: 9080}'));
    assert.match(implicit[0] ?? '', /^19:spec\.ports\[0\]\.port: targetPort equals port 9080 \(targetPort defaults to port\)/);
  });

  it('points at the WorkloadEntry port when its named port makes them equal', () => {
    const text =
      sa('ns', 'web') +
      workload('ns', 'web', '127.0.0.11', true, '  ports: {http: 9080}\n') +
      service('ns', 'web', '{name: http, port: 9080, targetPort: 8080}');
    assert.match(errors(text)[0] ?? '', /^12:spec\.ports\.http: app port equals service ns\/web port/);
  });

  it('is accepted in capture mode, and for a workload without a sidecar', () => {
    assert.deepEqual(errors(mesh('  captureMode: iptables') + base + service('ns', 'web', '{name: http, port: 9080}')), []);
    const plain = sa('ns', 'web') + workload('ns', 'web', '127.0.0.11', false) + service('ns', 'web', '{name: http, port: 9080}');
    assert.deepEqual(errors(plain), []);
  });
});
