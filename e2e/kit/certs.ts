import type { EnvoyProcess } from '../harness/index.js';

/** The serial numbers of the leaf certificates an Envoy holds now (from its /certs admin page). */
export async function leafSerials(envoy: EnvoyProcess): Promise<string[]> {
  const res = await envoy.admin('/certs');
  const body = JSON.parse(res.body) as {
    certificates?: { cert_chain?: { serial_number?: string; subject_alt_names?: { uri?: string }[] }[] }[];
  };
  const serials = new Set<string>();
  for (const c of body.certificates ?? []) {
    const leaf = c.cert_chain?.[0];
    if (leaf?.serial_number && leaf.subject_alt_names?.some((s) => s.uri?.startsWith('spiffe://')))
      serials.add(leaf.serial_number.toLowerCase());
  }
  return [...serials];
}

/** How many root certificates an Envoy's ROOTCA secret holds now (from its config dump; /certs shows only the first). */
export async function trustedCaCount(envoy: EnvoyProcess): Promise<number> {
  const dump = (await envoy.configDump('resource=dynamic_active_secrets')) as {
    configs?: { name?: string; secret?: { validation_context?: { trusted_ca?: { inline_string?: string } } } }[];
  };
  const rootca = dump.configs?.find((c) => c.name === 'ROOTCA');
  return (rootca?.secret?.validation_context?.trusted_ca?.inline_string?.match(/BEGIN CERTIFICATE/g) ?? []).length;
}

/** The PEM certificates of an Envoy's own SVID chain (the `default` secret), leaf first, from its config dump. */
export async function ownChainPems(envoy: EnvoyProcess): Promise<string[]> {
  const dump = (await envoy.configDump('resource=dynamic_active_secrets')) as {
    configs?: { name?: string; secret?: { tls_certificate?: { certificate_chain?: { inline_string?: string } } } }[];
  };
  const chain = dump.configs?.find((c) => c.name === 'default')?.secret?.tls_certificate?.certificate_chain?.inline_string ?? '';
  return chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}
