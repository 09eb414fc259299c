import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { listenAddressSans } from './serving-names.js';

const nic = (address: string, family: 'IPv4' | 'IPv6') => ({ address, family }) as NetworkInterfaceInfo;
const interfaces = { lo: [nic('127.0.0.1', 'IPv4'), nic('::1', 'IPv6')], eth0: [nic('10.0.0.5', 'IPv4'), nic('fe80::1%eth0', 'IPv6')] };

describe('listenAddressSans', () => {
  it('names the address a listener is bound to', () => {
    assert.deepEqual(listenAddressSans('127.0.0.1', interfaces), { dnsNames: [], ipAddresses: ['127.0.0.1'] });
    assert.deepEqual(listenAddressSans('[::1]', interfaces), { dnsNames: [], ipAddresses: ['::1'] });
  });
  it('names every interface address for the unspecified address (IPv4 only for 0.0.0.0; no zoned addresses)', () => {
    assert.deepEqual(listenAddressSans('0.0.0.0', interfaces).ipAddresses, ['127.0.0.1', '10.0.0.5']);
    assert.deepEqual(listenAddressSans('::', interfaces).ipAddresses, ['127.0.0.1', '::1', '10.0.0.5']);
  });
  it('turns a host name into a DNS SAN', () => {
    assert.deepEqual(listenAddressSans('CP.example.org', interfaces), { dnsNames: ['cp.example.org'], ipAddresses: [] });
  });
});
