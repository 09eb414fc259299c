// The photo app of the Istio Auth design (DESIGN.md scenario 1), as tests use it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestWorkload } from './mesh.js';

// The example files give each workload an address 127.0.0.1N. A test process moves them to
// 127.A.B.1N, with A.B from its pid, so that two test runs on one machine (two checkouts, or
// a helper's run beside yours) never fight over the same address and port.
const runNet = `127.${1 + ((process.pid >> 8) % 254)}.${process.pid % 256}`;

/** This test process's loopback address for the example files' `127.0.0.<last>`. */
export const loopbackAddress = (last: number): string => `${runNet}.${last}`;

/** Rewrites the example files' 127.0.0.1N addresses to this process's. */
export const toRunAddresses = (yaml: string): string =>
  yaml.replace(/\b127\.0\.0\.(1\d)\b/g, (_m, last: string) => loopbackAddress(Number(last)));

/** The three workloads of the photo app and their loopback addresses (examples/photo-app/mesh.yaml, moved per process). */
export const frontend: TestWorkload = { name: 'photo-frontend', namespace: 'photo-ns', address: loopbackAddress(11) };
export const backend: TestWorkload = { name: 'photo-backend', namespace: 'photo-ns', address: loopbackAddress(12) };
export const datastore: TestWorkload = { name: 'datastore', namespace: 'datastore-ns', address: loopbackAddress(13) };

/** The port every photo-app app listens on (the Services' targetPort); sidecars take 9080. */
export const APP_PORT = 8080;
export const SERVICE_PORT = 9080;

/** Host headers that name each service. */
export const backendHost = `photo-backend.photo-ns.svc.cluster.local:${SERVICE_PORT}`;
export const datastoreHost = `datastore.datastore-ns.svc.cluster.local:${SERVICE_PORT}`;

/** SPIFFE IDs of the three service accounts. */
export const ids = {
  frontend: 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend',
  backend: 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend',
  datastore: 'spiffe://cluster.local/ns/datastore-ns/sa/datastore',
};

const root = new URL('../../../', import.meta.url);

/** The example mesh config text, with `edit` applied (e.g. a short cert TTL). */
export function photoAppConfig(edit: (yaml: string) => string = (y) => y): string {
  return toRunAddresses(edit(readFileSync(fileURLToPath(new URL('examples/photo-app/mesh.yaml', root)), 'utf8')));
}

/** The VM workload of scenario 6 (service account, WorkloadEntry, and a policy letting it call photo-backend). */
export function photoAppVm(): string {
  return toRunAddresses(readFileSync(fileURLToPath(new URL('examples/photo-app/vm.yaml', root)), 'utf8'));
}

/** The example policy text. */
export function photoAppPolicy(): string {
  return readFileSync(fileURLToPath(new URL('examples/photo-app/policy.yaml', root)), 'utf8');
}

/** The caller's URI from an `x-forwarded-client-cert` header (`By=...;Hash=...;URI=...`). */
export function xfccUri(headers: Record<string, unknown> | undefined): string | undefined {
  const xfcc = String(headers?.['x-forwarded-client-cert'] ?? '');
  return /(?:^|;)URI=([^;,]+)/.exec(xfcc)?.[1];
}

/** The client certificate hash from an `x-forwarded-client-cert` header. */
export function xfccHash(headers: Record<string, unknown> | undefined): string | undefined {
  const xfcc = String(headers?.['x-forwarded-client-cert'] ?? '');
  return /(?:^|;)Hash=([^;,]+)/.exec(xfcc)?.[1];
}

/** An AuthorizationPolicy denying photo-frontend's calls to photo-backend (tests add it to see a DENY take effect). */
export const DENY_FRONTEND_TO_BACKEND = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: photo-backend-deny-frontend
  namespace: photo-ns
spec:
  selector:
    matchLabels:
      app: photo-backend
  action: DENY
  rules:
    - from:
        - source:
            principals: ['cluster.local/ns/photo-ns/sa/photo-frontend']
`;
