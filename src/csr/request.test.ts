import assert from 'node:assert/strict';
import { IstioCertificateRequest } from '../proto/index.js';
import { decodeCsrRequest, isGarbledCsr } from './request.js';

const encode = (csr: string, validityDuration = 0, metadata?: Record<string, unknown>) =>
  Buffer.from(IstioCertificateRequest.encode({ csr, validityDuration, metadata }).finish());

describe('csr: request decoding', () => {
  it('tells an absent validity from an explicit zero', () => {
    assert.deepEqual(decodeCsrRequest(encode('abc')), { csr: 'abc', validitySeconds: undefined, metadata: {} });
    const zero = decodeCsrRequest(Buffer.concat([encode('x'.repeat(70_000)), Buffer.from([0x18, 0x00])]));
    assert.ok(!isGarbledCsr(zero) && zero.validitySeconds === 0);
  });

  it('keeps positive and negative validities and the metadata', () => {
    const r = decodeCsrRequest(encode('abc', -5, { ClusterID: 'Kubernetes' }));
    assert.ok(!isGarbledCsr(r));
    assert.equal(r.validitySeconds, -5);
    assert.deepEqual(r.metadata, { ClusterID: 'Kubernetes' });
    const p = decodeCsrRequest(encode('abc', 3600));
    assert.ok(!isGarbledCsr(p) && p.validitySeconds === 3600);
  });

  it('marks undecodable bytes as garbled instead of throwing', () => {
    for (const bytes of [[0x0a, 0x32, 0x41, 0x41], [0x18], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]) {
      const r = decodeCsrRequest(Buffer.from(bytes));
      assert.ok(isGarbledCsr(r), `${Buffer.from(bytes).toString('hex')} decoded as ${JSON.stringify(r)}`);
    }
  });
});
