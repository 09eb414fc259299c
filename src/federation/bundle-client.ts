// Fetching a foreign bundle over the `https_spiffe` profile (SPIFFE Trust Domain and Bundle
// §5.2.2): the endpoint must present an X509-SVID for the configured endpoint SPIFFE ID that
// chains to the bundle we already hold for that trust domain. No redirects are followed, the
// response is size- and time-limited, and the new bundle must itself authenticate the
// endpoint's certificate: a bundle for another trust domain (or one that drops the roots the
// endpoint serves under) is refused, so trust never jumps to keys the previous bundle did not vouch for.
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { err, ok, type Result } from '../lib/index.js';
import { parseSpiffeBundle, type BundleProblem, type SpiffeBundle } from './bundle-format.js';

/** How one fetch is made. */
export interface BundleFetchRequest {
  readonly url: string;
  /** The SPIFFE ID the endpoint must present (its only URI SAN). */
  readonly endpointId: string;
  /** The roots of the bundle held now for the endpoint's trust domain. */
  readonly trustedRootsPem: readonly string[];
  /** Largest response body accepted, in bytes. */
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

const fail = (kind: BundleProblem['kind'], message: string): Result<never, BundleProblem> => err({ kind, message });

/** Fetches and checks a bundle; never throws. */
export function fetchBundle(r: BundleFetchRequest): Promise<Result<SpiffeBundle, BundleProblem>> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: Result<SpiffeBundle, BundleProblem>) => {
      if (settled) return;
      settled = true;
      resolve(v);
    };
    let peerChain: X509Certificate[] = [];
    let idProblem: string | undefined;
    let req: ReturnType<typeof https.request>;
    try {
      req = https.request(r.url, {
        method: 'GET',
        ca: [...r.trustedRootsPem],
        rejectUnauthorized: true,
        // No session reuse: every fetch re-authenticates the endpoint against the current bundle.
        agent: false,
        headers: { accept: 'application/json' },
        // https_spiffe: the endpoint is named by its SPIFFE ID, not by the URL's host.
        checkServerIdentity: (_host, cert) => {
          const uris = urisOf(cert);
          if (uris.length !== 1 || uris[0] !== r.endpointId) {
            idProblem = `the endpoint presented ${uris.length === 0 ? 'no SPIFFE ID' : uris.join(', ')}, expected ${r.endpointId}`;
            return new Error(idProblem);
          }
          return undefined;
        },
      });
    } catch (e) {
      done(fail('unreachable', `${r.url}: ${(e as Error).message}`));
      return;
    }
    req.setTimeout(r.timeoutMs, () => req.destroy(new Error(`no answer within ${r.timeoutMs} ms`)));
    req.on('socket', (s) => {
      s.once('secureConnect', () => {
        peerChain = chainOf(s as TLSSocket);
      });
    });
    req.on('error', (e) => {
      if (idProblem) done(fail('wrong-endpoint-id', idProblem));
      else if (
        /certificate|self.signed|verify/i.test(e.message) ||
        ('code' in e && /CERT|SIGNATURE/.test(String((e as { code?: string }).code)))
      )
        done(fail('untrusted-endpoint', `the endpoint's certificate does not chain to the bundle held for its trust domain: ${e.message}`));
      else done(fail('unreachable', `${r.url}: ${e.message}`));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.resume();
        const where = res.headers.location ?? '(no location)';
        done(fail('redirect', `the endpoint redirected (${status}) to ${where}; bundle endpoints are fetched without following redirects`));
        req.destroy();
        return;
      }
      if (status !== 200) {
        res.resume();
        done(fail('http-status', `the endpoint answered HTTP ${status}`));
        req.destroy();
        return;
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (declared > r.maxBytes) {
        done(fail('oversized', `the response declares ${declared} bytes, above the limit of ${r.maxBytes}`));
        req.destroy();
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > r.maxBytes) {
          done(fail('oversized', `the response is larger than the limit of ${r.maxBytes} bytes`));
          req.destroy();
          return;
        }
        parts.push(c);
      });
      res.on('error', (e) => done(fail('unreachable', `${r.url}: ${e.message}`)));
      res.on('end', () => {
        if (settled) return;
        const parsed = parseSpiffeBundle(Buffer.concat(parts).toString('utf8'));
        if (!parsed.ok) return done(parsed);
        if (!authenticatesEndpoint(parsed.value.rootsPem, peerChain))
          return done(
            fail(
              'wrong-trust-domain',
              `none of the bundle's ${parsed.value.rootsPem.length} root(s) vouches for the endpoint's own SVID (${r.endpointId}): it is not this trust domain's bundle`,
            ),
          );
        done(ok(parsed.value));
      });
    });
    req.end();
  });
}

/** The URI SANs of a peer certificate. */
function urisOf(cert: PeerCertificate): string[] {
  return (cert.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}

/** The peer's chain as sent, leaf first. */
function chainOf(s: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let c = s.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate; raw?: Buffer };
  const seen = new Set<string>();
  while (c?.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate as typeof c;
  }
  return out;
}

/** True when one of `rootsPem` is in the chain or signed one of its certificates. */
export function authenticatesEndpoint(rootsPem: readonly string[], chain: readonly X509Certificate[]): boolean {
  const roots = rootsPem.map((p) => new X509Certificate(p));
  return chain.some((c) =>
    roots.some((root) => c.fingerprint256 === root.fingerprint256 || (c.checkIssued(root) && c.verify(root.publicKey))),
  );
}
