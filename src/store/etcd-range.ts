// Reads every key under a prefix in pages, at one revision. etcd answers a range in one gRPC
// message, and the client refuses a message over 4 MiB: a range of tens of thousands of keys read
// at once does not fit (10,000 workloads are about 30,000 config objects, 5.7 MB; a day of
// issuance records for 10,000 proxies is about as many). Later pages are read at the first
// page's revision, so the result is one consistent snapshot.
import type { Etcd3, IKeyValue } from 'etcd3';

/** Keys per page (a config object or issuance record is a few hundred bytes; 500 stay far below 4 MiB). */
export const DEFAULT_PAGE_SIZE = 500;

/** The first key after every key that starts with `prefix` (etcd's range end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Every key-value under `prefix` in key order, and the revision they were read at. Rejects as the client does. */
export async function readPrefix(
  client: Etcd3,
  prefix: string,
  pageSize = DEFAULT_PAGE_SIZE,
): Promise<{ readonly revision: number; readonly kvs: readonly IKeyValue[] }> {
  const end = prefixEnd(prefix);
  const kvs: IKeyValue[] = [];
  let start = Buffer.from(prefix);
  let revision: number | undefined;
  for (;;) {
    let q = client.getAll().inRange({ start, end }).sort('Key', 'Ascend').limit(pageSize);
    if (revision !== undefined) q = q.revision(revision);
    const res = await q.exec();
    revision ??= Number(res.header.revision);
    kvs.push(...(res.kvs as IKeyValue[]));
    const last = res.kvs.at(-1);
    if (!res.more || !last) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return { revision: revision ?? 0, kvs };
}
