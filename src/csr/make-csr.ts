// Builds PKCS#10 certificate requests (RFC 2986) the way an Istio agent does: the SANs
// travel in an extensionRequest attribute (PKCS#9, RFC 2985 §5.4.2). pkijs assembles the
// structure; node:crypto signs the to-be-signed bytes, so every key node can use works,
// including the weak ones tests need to see refused.
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUBJECT_ALT_NAME = '2.5.29.17';
const BASIC_CONSTRAINTS = '2.5.29.19';
const ORGANIZATION = '2.5.4.10';
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

/** What a CSR asks for: the key pair that signs it and the names it requests. */
export interface MakeCsrRequest {
  readonly privateKey: KeyObject;
  /** Defaults to the public half of `privateKey`. */
  readonly publicKey?: KeyObject;
  readonly uriSans: readonly string[];
  readonly dnsSans?: readonly string[];
  /** Ask for basicConstraints CA=true (only tests do; the CSR service refuses it). */
  readonly requestCa?: boolean;
  /** Subject organization (Istio agents put the trust domain there); informational only. */
  readonly organization?: string;
  /** More extensions to request, as they are (tests and the CSR fuzzer: whatever a client might send, signed). */
  readonly extraExtensions?: readonly { readonly oid: string; readonly critical: boolean; readonly der: Uint8Array }[];
}

/** Returns a signed PEM CSR (ECDSA with SHA-256, or SHA-256 with RSA). */
export function makeCsr(req: MakeCsrRequest): string {
  const publicKey = req.publicKey ?? createPublicKey(req.privateKey);
  const csr = new pkijs.CertificationRequest();
  if (req.organization)
    csr.subject.typesAndValues.push(
      new pkijs.AttributeTypeAndValue({ type: ORGANIZATION, value: new asn1js.Utf8String({ value: req.organization }) }),
    );
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  csr.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(spki);

  const altNames = [
    ...req.uriSans.map((value) => new pkijs.GeneralName({ type: 6, value })),
    ...(req.dnsSans ?? []).map((value) => new pkijs.GeneralName({ type: 2, value })),
  ];
  const extensions: pkijs.Extension[] = [];
  if (altNames.length > 0)
    extensions.push(
      new pkijs.Extension({
        extnID: SUBJECT_ALT_NAME,
        critical: false,
        extnValue: new pkijs.GeneralNames({ names: altNames }).toSchema().toBER(false),
      }),
    );
  if (req.requestCa)
    extensions.push(
      new pkijs.Extension({
        extnID: BASIC_CONSTRAINTS,
        critical: true,
        extnValue: new pkijs.BasicConstraints({ cA: true }).toSchema().toBER(false),
      }),
    );
  for (const x of req.extraExtensions ?? [])
    extensions.push(new pkijs.Extension({ extnID: x.oid, critical: x.critical, extnValue: Uint8Array.from(x.der).buffer }));
  csr.attributes = [new pkijs.Attribute({ type: EXTENSION_REQUEST, values: [new pkijs.Extensions({ extensions }).toSchema()] })];

  const rsa = publicKey.asymmetricKeyType === 'rsa';
  csr.signatureAlgorithm = new pkijs.AlgorithmIdentifier({
    algorithmId: rsa ? SHA256_WITH_RSA : ECDSA_WITH_SHA256,
    // RFC 4055 §5: the RSA AlgorithmIdentifier carries an explicit NULL; RFC 5758 §3.2: ECDSA's has none.
    ...(rsa ? { algorithmParams: new asn1js.Null() } : {}),
  });
  // CertificationRequestInfo (RFC 2986 §4.1); pkijs keeps its own encoder protected.
  const info = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 0 }),
      csr.subject.toSchema(),
      csr.subjectPublicKeyInfo.toSchema(),
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: csr.attributes.map((a) => a.toSchema()) }),
    ],
  });
  csr.tbsView = new Uint8Array(info.toBER(false));
  // X.509 and PKCS#10 carry ECDSA signatures DER-encoded (RFC 3279 §2.2.3), node's default.
  const signature = sign('sha256', csr.tbsView, req.privateKey);
  csr.signatureValue = new asn1js.BitString({ valueHex: signature });
  const der = Buffer.from(csr.toSchema().toBER(false));
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}-----END CERTIFICATE REQUEST-----\n`;
}
