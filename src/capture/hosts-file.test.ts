import assert from 'node:assert/strict';
import { hostsFileFor } from './hosts-file.js';

const services = [
  { name: 'photo-backend', namespace: 'photo-ns', vip: '10.231.7.201' },
  { name: 'datastore', namespace: 'datastore-ns', vip: '10.231.7.202' },
];

describe('hostsFileFor', () => {
  it('lists full, namespaced and (same namespace only) short names for each service VIP', () => {
    assert.equal(
      hostsFileFor('photo-ns', services, 'cluster.local'),
      [
        '# written by meshpilot for namespace photo-ns',
        '127.0.0.1 localhost',
        '::1 localhost ip6-localhost ip6-loopback',
        '10.231.7.202 datastore.datastore-ns.svc.cluster.local datastore.datastore-ns',
        '10.231.7.201 photo-backend.photo-ns.svc.cluster.local photo-backend.photo-ns photo-backend',
        '',
      ].join('\n'),
    );
  });

  it('uses the domain suffix given and gives no short names to other namespaces', () => {
    const text = hostsFileFor('datastore-ns', services, 'mesh.example');
    assert.match(text, /^10\.231\.7\.201 photo-backend\.photo-ns\.svc\.mesh\.example photo-backend\.photo-ns$/m);
    assert.match(text, /^10\.231\.7\.202 datastore\.datastore-ns\.svc\.mesh\.example datastore\.datastore-ns datastore$/m);
  });

  it('throws on a VIP that is not an IP address (a caller bug)', () => {
    assert.throws(() => hostsFileFor('a', [{ name: 's', namespace: 'a', vip: 'not-an-ip' }], 'cluster.local'), /not an IP/);
  });

  it('lists ServiceEntry hosts, as written, at their entry VIP', () => {
    const text = hostsFileFor('photo-ns', services, 'cluster.local', [
      { hosts: ['api.example.com', 'api2.example.com'], vip: '10.96.3.4' },
    ]);
    assert.match(text, /^10\.96\.3\.4 api\.example\.com api2\.example\.com$/m);
  });
});
