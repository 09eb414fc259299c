import assert from 'node:assert/strict';
import * as asn1js from 'asn1js';
import { bitString, children, encodeLength, fromPem, oid, readTlv, sequence, smallInteger, time, toPem, unsignedInteger } from './der.js';

describe('ca: DER encoder', () => {
  it('encodes lengths in minimal definite form', () => {
    assert.deepEqual([...encodeLength(5)], [5]);
    assert.deepEqual([...encodeLength(200)], [0x81, 200]);
    assert.deepEqual([...encodeLength(300)], [0x82, 1, 44]);
    const long = sequence(Buffer.alloc(70000));
    assert.deepEqual([...long.subarray(0, 5)], [0x30, 0x83, 0x01, 0x11, 0x70]);
    assert.equal(readTlv(long).end, long.length);
  });

  it('encodes integers as DER requires (sign byte added, leading zeros stripped)', () => {
    assert.deepEqual([...unsignedInteger(Buffer.from([0x80]))], [2, 2, 0, 0x80]);
    assert.deepEqual([...unsignedInteger(Buffer.from([0, 0, 0x12]))], [2, 1, 0x12]);
    assert.deepEqual([...unsignedInteger(Buffer.from([0, 0x80]))], [2, 2, 0, 0x80]);
    assert.deepEqual([...smallInteger(0)], [2, 1, 0]);
    assert.deepEqual([...smallInteger(2)], [2, 1, 2]);
  });

  it('encodes OIDs that asn1js reads back', () => {
    for (const o of ['2.5.29.17', '1.2.840.10045.4.3.2', '1.3.6.1.5.5.7.3.2', '2.999.1']) {
      const parsed = asn1js.fromBER(oid(o));
      assert.equal((parsed.result as asn1js.ObjectIdentifier).valueBlock.toString(), o);
    }
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050', () => {
    assert.equal(
      time(Date.UTC(2026, 0, 2, 3, 4, 5))
        .subarray(2)
        .toString(),
      '260102030405Z',
    );
    assert.equal(time(Date.UTC(2026, 0, 2, 3, 4, 5))[0], 0x17);
    const g = time(Date.UTC(2050, 11, 31, 23, 59, 59));
    assert.equal(g[0], 0x18);
    assert.equal(g.subarray(2).toString(), '20501231235959Z');
  });

  it('reads back what it writes and round-trips PEM', () => {
    const der = sequence(smallInteger(1), bitString(Buffer.from([0xff]), 0));
    const kids = children(der, readTlv(der));
    assert.deepEqual(
      kids.map((k) => k.tag),
      [0x02, 0x03],
    );
    assert.deepEqual(fromPem('THING', toPem('THING', der)), [der]);
    assert.throws(() => readTlv(Buffer.from([0x30, 0x05, 0x00])), /truncated/);
  });
});
