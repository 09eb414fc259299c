// Settings read once at start: the CA, the control plane's identity and the SVID store are
// built from them. A running config that changes one is refused, naming the field, instead
// of being half-applied (new names pushed while the CA still signs the old trust domain).
import { formatDuration, type MeshModel, type MeshSettings } from '../model/index.js';
import type { ConfigDiagnostic } from './diagnostics.js';

/** The MeshConfig fields that take effect only at start, with how to show their values. */
const BOOT_FIELDS: readonly { readonly field: string; readonly value: (s: MeshSettings) => string }[] = [
  { field: 'trustDomain', value: (s) => s.trustDomain },
  { field: 'rootNamespace', value: (s) => s.rootNamespace },
  { field: 'certTtl', value: (s) => formatDuration(s.certTtlMs) },
  { field: 'maxCertTtl', value: (s) => formatDuration(s.maxCertTtlMs) },
  { field: 'renewAtFraction', value: (s) => String(s.renewAtFraction) },
  { field: 'renewJitterFraction', value: (s) => String(s.renewJitterFraction) },
  { field: 'caPluginDir', value: (s) => s.caPluginDir ?? '(none)' },
  { field: 'bundleEndpoint', value: (s) => JSON.stringify(s.bundleEndpoint ?? null) },
  { field: 'federatesWith', value: (s) => JSON.stringify(s.federatesWith) },
];

/** Errors for every start-time setting that `next` changes from `running`; empty when none does. */
export function bootSettingChanges(running: MeshSettings, next: MeshModel): ConfigDiagnostic[] {
  const out: ConfigDiagnostic[] = [];
  for (const { field, value } of BOOT_FIELDS) {
    const was = value(running);
    const now = value(next.settings);
    if (was === now) continue;
    const origin = next.settings.origin;
    const at = origin?.fields?.get(`spec.${field}`) ?? origin;
    out.push({
      severity: 'error',
      file: origin?.file ?? '(defaults)',
      line: at?.line,
      column: at?.column,
      path: `MeshConfig.spec.${field}`,
      message: `${field} is read at start (running: ${was}, config: ${now}); restart meshpilot to change it`,
    });
  }
  return out;
}
