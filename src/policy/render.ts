// Renders compiled filters as plain, readable data (for golden files and `authz check --explain`):
// the typed configs are decoded from the exact bytes the proxy receives, defaults left out.
import {
  ExtAuthz,
  HttpRbac,
  JwtAuthentication,
  NetworkRbac,
  RbacAction,
  URI_TEMPLATE_MATCH_TYPE,
  UriTemplateMatchConfig,
} from '../proto/index.js';
import { HTTP_RBAC_FILTER, NETWORK_RBAC_FILTER, type PolicyFilter } from './authorization.js';
import { EXT_AUTHZ_FILTER } from './ext-authz.js';
import { JWT_FILTER } from './matchers.js';
import { UNUSABLE_JWKS } from './request-authentication.js';

// Drops what protobuf treats as unset (false, '', empty lists, undefined); keeps 0 only for
// fields where it means something (a CIDR prefix length of 0).
function prune(v: unknown, key = ''): unknown {
  // A packed URI template (RBAC uri_template) is shown as its template, not as bytes.
  const any = v as { typeUrl?: unknown; value?: unknown } | null;
  if (key === 'typedConfig' && any?.typeUrl === `type.googleapis.com/${URI_TEMPLATE_MATCH_TYPE}` && any.value instanceof Uint8Array)
    return { '@type': URI_TEMPLATE_MATCH_TYPE, pathTemplate: UriTemplateMatchConfig.decode(any.value).pathTemplate };
  if (v instanceof Uint8Array) return v.length === 0 ? undefined : Buffer.from(v).toString('base64');
  if (Array.isArray(v)) {
    const items = v.map((x) => prune(x)).filter((x) => x !== undefined);
    return items.length === 0 ? undefined : items;
  }
  if (v === null || v === undefined || v === false || v === '') return undefined;
  if (typeof v === 'number') return v === 0 && key !== 'prefixLen' ? undefined : v;
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const p = prune(x, k);
      if (p !== undefined) out[k] = p;
    }
    return out;
  }
  return v;
}

/** Decodes one compiled filter into plain data: RBAC action and policies, or jwt_authn providers and rules. */
export function renderFilter(f: PolicyFilter): unknown {
  switch (f.name) {
    case HTTP_RBAC_FILTER:
    case NETWORK_RBAC_FILTER: {
      const c = f.name === HTTP_RBAC_FILTER ? HttpRbac.decode(f.typedConfig.value) : NetworkRbac.decode(f.typedConfig.value);
      return {
        filter: f.name,
        ...('statPrefix' in c && c.statPrefix ? { statPrefix: c.statPrefix } : {}),
        ...(c.rules ? { action: RbacAction[c.rules.action], policies: prune(c.rules.policies) ?? {} } : {}),
        ...(c.shadowRules
          ? {
              shadowAction: RbacAction[c.shadowRules.action],
              shadowPolicies: prune(c.shadowRules.policies) ?? {},
              shadowRulesStatPrefix: c.shadowRulesStatPrefix,
            }
          : {}),
      };
    }
    case JWT_FILTER: {
      const c = JwtAuthentication.decode(f.typedConfig.value);
      for (const p of Object.values(c.providers)) {
        if (p.localJwks?.inlineString === UNUSABLE_JWKS) p.localJwks.inlineString = '<UNUSABLE_JWKS: verifies nothing>';
      }
      return { filter: f.name, ...(prune(c) as object) };
    }
    case EXT_AUTHZ_FILTER: {
      const c = ExtAuthz.decode(f.typedConfig.value);
      // transport_api_version V3 is 2; shown by name.
      return { filter: f.name, ...(prune({ ...c, transportApiVersion: undefined }) as object), transportApiVersion: 'V3' };
    }
    default:
      return { filter: f.name, typeUrl: f.typedConfig.typeUrl };
  }
}
