import assert from 'node:assert/strict';
import {
  DEFAULT_TRUST_DOMAIN,
  mustSpiffeId,
  mustTrustDomain,
  parseSpiffeId,
  parseTrustDomain,
  parseWorkloadId,
  pathOf,
  trustDomainOf,
  workloadId,
} from './index.js';
import type { SpiffeIdRule } from './index.js';

function rejects(r: { ok: boolean; error?: { rule: SpiffeIdRule; message: string } }, rule: SpiffeIdRule): void {
  assert.equal(r.ok, false, 'expected a rejection');
  assert.equal(r.error?.rule, rule, r.error?.message);
  assert.ok(r.error!.message.length > 0);
}

describe('identity: SPIFFE IDs', () => {
  describe('valid IDs', () => {
    for (const s of [
      'spiffe://example.org',
      'spiffe://example.org/workload',
      'spiffe://cluster.local/ns/default/sa/default',
      'spiffe://a_b-c.d9/A.b_C-9/x',
      'spiffe://td/..a/a..',
    ]) {
      it(`accepts ${s}`, () => {
        const r = parseSpiffeId(s);
        assert.ok(r.ok, r.ok ? '' : r.error.message);
        assert.equal(r.value, s);
      });
    }
    it('splits trust domain and path', () => {
      const id = mustSpiffeId('spiffe://example.org/ns/a/sa/b');
      assert.equal(trustDomainOf(id), 'example.org');
      assert.equal(pathOf(id), '/ns/a/sa/b');
      assert.equal(pathOf(mustSpiffeId('spiffe://example.org')), '');
    });
  });

  describe('rules', () => {
    const cases: [string, string, SpiffeIdRule][] = [
      ['empty string', '', 'empty'],
      ['wrong scheme', 'https://example.org/a', 'scheme'],
      ['upper-case scheme', 'SPIFFE://example.org/a', 'scheme'],
      ['missing scheme', 'example.org/a', 'scheme'],
      ['missing trust domain', 'spiffe:///a', 'trust-domain-missing'],
      ['bare scheme', 'spiffe://', 'trust-domain-missing'],
      ['upper-case trust domain', 'spiffe://Example.org/a', 'trust-domain-chars'],
      ['percent-encoded trust domain', 'spiffe://ex%41mple.org/a', 'trust-domain-chars'],
      ['trust domain with space', 'spiffe://exa mple.org', 'trust-domain-chars'],
      ['port', 'spiffe://example.org:8080/a', 'port'],
      ['user info', 'spiffe://user@example.org/a', 'user-info'],
      ['user info with password', 'spiffe://user:pw@example.org/a', 'user-info'],
      ['query', 'spiffe://example.org/a?x=1', 'query'],
      ['fragment', 'spiffe://example.org/a#frag', 'fragment'],
      ['empty segment', 'spiffe://example.org//a', 'empty-segment'],
      ['empty segment in the middle', 'spiffe://example.org/a//b', 'empty-segment'],
      ['dot segment', 'spiffe://example.org/a/./b', 'dot-segment'],
      ['dot-dot segment', 'spiffe://example.org/a/../b', 'dot-segment'],
      ['bad segment char', 'spiffe://example.org/a/b c', 'segment-chars'],
      ['percent-encoded segment', 'spiffe://example.org/a%20b', 'segment-chars'],
      ['unicode segment', 'spiffe://example.org/caf\u00e9', 'segment-chars'],
      ['trailing slash', 'spiffe://example.org/a/', 'trailing-slash'],
      ['root path slash', 'spiffe://example.org/', 'trailing-slash'],
      ['trust domain over 255 bytes', `spiffe://${'a'.repeat(256)}/x`, 'trust-domain-too-long'],
      ['whole ID over 2048 bytes', `spiffe://example.org/${'a'.repeat(2048)}`, 'too-long'],
    ];
    for (const [name, input, rule] of cases) {
      it(`rejects ${name} (${rule})`, () => rejects(parseSpiffeId(input), rule));
    }
    it('accepts a trust domain of exactly 255 bytes and an ID of exactly 2048 bytes', () => {
      assert.ok(parseSpiffeId(`spiffe://${'a'.repeat(255)}`).ok);
      const prefix = 'spiffe://example.org/';
      assert.ok(parseSpiffeId(prefix + 'a'.repeat(2048 - prefix.length)).ok);
    });
  });

  describe('trust domains', () => {
    it('parses a bare trust domain', () => assert.equal(mustTrustDomain('example.org'), 'example.org'));
    it('defaults to cluster.local', () => assert.equal(DEFAULT_TRUST_DOMAIN, 'cluster.local'));
    it('rejects an empty one', () => rejects(parseTrustDomain(''), 'trust-domain-missing'));
    it('rejects a URI', () => rejects(parseTrustDomain('spiffe://example.org'), 'trust-domain-chars'));
    it('rejects upper case', () => rejects(parseTrustDomain('Example.org'), 'trust-domain-chars'));
    it('rejects a port', () => rejects(parseTrustDomain('example.org:443'), 'port'));
    it('rejects a slash', () => rejects(parseTrustDomain('example.org/a'), 'trust-domain-chars'));
    it('rejects over 255 bytes', () => rejects(parseTrustDomain('a'.repeat(256)), 'trust-domain-too-long'));
  });

  describe('workload IDs', () => {
    const td = mustTrustDomain('cluster.local');
    it('formats and parses back', () => {
      const id = workloadId(td, 'photo-ns', 'photo-frontend');
      assert.ok(id.ok);
      assert.equal(id.value, 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend');
      assert.deepEqual(parseWorkloadId(id.value), {
        ok: true,
        value: { trustDomain: 'cluster.local', namespace: 'photo-ns', serviceAccount: 'photo-frontend' },
      });
    });
    it('accepts a dotted service account (DNS-1123 subdomain)', () => assert.ok(workloadId(td, 'a', 'b.c-d').ok));
    it('rejects an upper-case namespace', () => rejects(workloadId(td, 'Photo', 'sa'), 'namespace-dns1123-label'));
    it('rejects a namespace over 63 characters', () => rejects(workloadId(td, 'a'.repeat(64), 'sa'), 'namespace-dns1123-label'));
    it('rejects a namespace with a dot', () => rejects(workloadId(td, 'a.b', 'sa'), 'namespace-dns1123-label'));
    it('rejects a namespace ending in a dash', () => rejects(workloadId(td, 'ns-', 'sa'), 'namespace-dns1123-label'));
    it('rejects an empty namespace', () => rejects(workloadId(td, '', 'sa'), 'namespace-dns1123-label'));
    it('rejects a service account with an underscore', () => rejects(workloadId(td, 'ns', 'my_sa'), 'service-account-dns1123-subdomain'));
    it('rejects a service account with an empty label', () => rejects(workloadId(td, 'ns', 'a..b'), 'service-account-dns1123-subdomain'));
    it('rejects a service account over 253 characters', () =>
      rejects(workloadId(td, 'ns', `${'a'.repeat(63)}.`.repeat(4) + 'a'), 'service-account-dns1123-subdomain'));
    it('rejects a path that is not /ns/<ns>/sa/<sa>', () => {
      rejects(parseWorkloadId('spiffe://cluster.local/ns/a/sa'), 'workload-path');
      rejects(parseWorkloadId('spiffe://cluster.local/ns/a/x/b'), 'workload-path');
      rejects(parseWorkloadId('spiffe://cluster.local'), 'workload-path');
      rejects(parseWorkloadId('spiffe://cluster.local/ns/a/sa/b/c'), 'workload-path');
    });
    it('reports the SPIFFE rule first', () => rejects(parseWorkloadId('spiffe://cluster.local/ns/a/sa/b/'), 'trailing-slash'));
    it('rejects a Kubernetes-invalid part of a parsed ID', () => {
      rejects(parseWorkloadId('spiffe://cluster.local/ns/A/sa/b'), 'namespace-dns1123-label');
      rejects(parseWorkloadId('spiffe://cluster.local/ns/a/sa/B_'), 'service-account-dns1123-subdomain');
    });
  });
});
