import { shortHash } from '../lib/index.js';
import { contentHash, deepFreeze } from './canonical.js';
import { selectorMatches } from './labels.js';
import { createSelectorIndex } from './selector-index.js';
import { meshSettings, type MeshSettings } from './settings.js';
import type {
  AuthorizationPolicy,
  DestinationRule,
  ObjectKind,
  ObjectMeta,
  PeerAuthentication,
  RequestAuthentication,
  Service,
  ServiceAccount,
  ServiceAccountRef,
  ServiceEntry,
  ServicePort,
  Sidecar,
  WorkloadEntry,
} from './types.js';

/** A namespace and name, enough to look an object up. */
export interface NamespacedName {
  readonly namespace: string;
  readonly name: string;
}

/** What a MeshModel is built from; ownership passes to the model, which freezes the objects. */
export interface MeshModelInput {
  readonly settings?: Partial<MeshSettings>;
  readonly serviceAccounts?: readonly ServiceAccount[];
  readonly services?: readonly Service[];
  readonly workloads?: readonly WorkloadEntry[];
  readonly peerAuthentications?: readonly PeerAuthentication[];
  readonly authorizationPolicies?: readonly AuthorizationPolicy[];
  readonly requestAuthentications?: readonly RequestAuthentication[];
  readonly sidecars?: readonly Sidecar[];
  readonly serviceEntries?: readonly ServiceEntry[];
  readonly destinationRules?: readonly DestinationRule[];
}

/** The whole mesh at one version: immutable, every list sorted by namespace then name. */
export interface MeshModel {
  /** Hash of the normalized content (source positions excluded): equal content, equal version. */
  readonly version: string;
  readonly settings: MeshSettings;
  readonly serviceAccounts: readonly ServiceAccount[];
  readonly services: readonly Service[];
  readonly workloads: readonly WorkloadEntry[];
  readonly peerAuthentications: readonly PeerAuthentication[];
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  readonly requestAuthentications: readonly RequestAuthentication[];
  readonly sidecars: readonly Sidecar[];
  readonly serviceEntries: readonly ServiceEntry[];
  readonly destinationRules: readonly DestinationRule[];

  /** Looks up a ServiceAccount by namespace and name. */
  serviceAccount(namespace: string, name: string): ServiceAccount | undefined;
  /** Looks up a Service by namespace and name. */
  service(namespace: string, name: string): Service | undefined;
  /** Looks up a WorkloadEntry by namespace and name. */
  workload(namespace: string, name: string): WorkloadEntry | undefined;
  /** Workloads selected by a service (same namespace, labels ⊇ selector), sorted by name. */
  workloadsOf(service: NamespacedName): readonly WorkloadEntry[];
  /** Services that select a workload, sorted by name. */
  servicesOf(workload: NamespacedName): readonly Service[];
  /** The distinct service accounts a service's workloads run as, sorted. */
  serviceAccountsOf(service: NamespacedName): readonly ServiceAccountRef[];
  /** PeerAuthentications that apply to a workload (its namespace and the root namespace, selector matching). */
  peerAuthenticationsFor(workload: WorkloadEntry): readonly PeerAuthentication[];
  /** AuthorizationPolicies that apply to a workload (its namespace and the root namespace, selector matching). */
  authorizationPoliciesFor(workload: WorkloadEntry): readonly AuthorizationPolicy[];
  /** RequestAuthentications that apply to a workload (its namespace and the root namespace, selector matching). */
  requestAuthenticationsFor(workload: WorkloadEntry): readonly RequestAuthentication[];
  /**
   * The Sidecar that applies to a workload, by Istio's precedence: one of its namespace whose
   * selector matches it (the first by name), else its namespace's without selector, else the root
   * namespace's without selector; undefined when none does.
   */
  sidecarFor(workload: WorkloadEntry): Sidecar | undefined;
  /** The WorkloadEntries a ServiceEntry's workloadSelector picks (its namespace), sorted by name; empty without one. */
  workloadsOfEntry(entry: ServiceEntry): readonly WorkloadEntry[];
}

/** Returns the key `kind/namespace/name` that identifies an object across model versions. */
export function objectKey(kind: ObjectKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

// Per-object content hashes of each model, for diffModels; kept off the public surface.
const objectHashes = new WeakMap<MeshModel, { readonly objects: ReadonlyMap<string, string>; readonly settings: string }>();

/** Returns the per-object content hashes recorded for a model built by createMeshModel. */
export function hashesOf(model: MeshModel): { readonly objects: ReadonlyMap<string, string>; readonly settings: string } {
  const h = objectHashes.get(model);
  if (!h) throw new Error('model was not built by createMeshModel');
  return h;
}

const byName = (a: ObjectMeta, b: ObjectMeta): number =>
  a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

const nsKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/** Builds an immutable, versioned model; duplicate names are a bug here (the config loader reports them) and throw. */
export function createMeshModel(input: MeshModelInput): MeshModel {
  const settings = deepFreeze(meshSettings(input.settings));
  const hashes = new Map<string, string>();

  function index<T extends ObjectMeta>(kind: ObjectKind, list: readonly T[] | undefined): { all: readonly T[]; byKey: Map<string, T> } {
    const all = [...(list ?? [])].sort(byName);
    const byKey = new Map<string, T>();
    for (const o of all) {
      const key = nsKey(o.namespace, o.name);
      if (byKey.has(key)) throw new Error(`duplicate ${kind} ${key}`);
      byKey.set(key, o);
      deepFreeze(o);
      hashes.set(objectKey(kind, o.namespace, o.name), contentHash(kind, o));
    }
    return { all: Object.freeze(all), byKey };
  }

  const sas = index('ServiceAccount', input.serviceAccounts);
  const svcs = index('Service', input.services);
  const wls = index('WorkloadEntry', input.workloads);
  const pas = index('PeerAuthentication', input.peerAuthentications);
  const aps = index('AuthorizationPolicy', input.authorizationPolicies);
  const ras = index('RequestAuthentication', input.requestAuthentications);
  const scs = index('Sidecar', input.sidecars);
  const ses = index('ServiceEntry', input.serviceEntries);
  const drs = index('DestinationRule', input.destinationRules);

  const settingsHash = contentHash('MeshConfig', settings);
  const lines = [...hashes.entries()].map(([k, h]) => `${k}=${h}`).sort();
  const version = shortHash(`settings=${settingsHash}\n`, lines.join('\n'));

  // Selection is computed on first use: large models are rebuilt per change, queries are rarer.
  let selection: { workloadsOf: Map<string, readonly WorkloadEntry[]>; servicesOf: Map<string, readonly Service[]> } | undefined;
  function select(): NonNullable<typeof selection> {
    if (selection) return selection;
    const byLabel = createSelectorIndex(
      wls.all,
      (w) => w.namespace,
      (w) => w.labels,
    );
    const workloadsOf = new Map<string, readonly WorkloadEntry[]>();
    const servicesOf = new Map<string, Service[]>();
    for (const s of svcs.all) {
      // Workloads are indexed in name order, so each pick is sorted by name as the interface promises.
      const picked = byLabel.select(s.namespace, s.selector);
      workloadsOf.set(nsKey(s.namespace, s.name), Object.freeze(picked));
      for (const w of picked) {
        const key = nsKey(w.namespace, w.name);
        const list = servicesOf.get(key) ?? [];
        list.push(s);
        servicesOf.set(key, list);
      }
    }
    for (const list of servicesOf.values()) Object.freeze(list);
    selection = { workloadsOf, servicesOf };
    return selection;
  }

  // Policies grouped by namespace on first use, so a workload's query reads its namespace's and the
  // root namespace's policies, not every policy of the mesh.
  const byNamespace = new WeakMap<readonly ObjectMeta[], Map<string, readonly ObjectMeta[]>>();
  function groupOf<T extends ObjectMeta>(list: readonly T[], namespace: string): readonly T[] {
    let groups = byNamespace.get(list);
    if (!groups) {
      const g = new Map<string, T[]>();
      for (const p of list) {
        const l = g.get(p.namespace);
        if (l) l.push(p);
        else g.set(p.namespace, [p]);
      }
      groups = g;
      byNamespace.set(list, groups);
    }
    return (groups.get(namespace) ?? []) as readonly T[];
  }

  function applying<T extends ObjectMeta & { readonly selector?: Readonly<Record<string, string>> }>(
    list: readonly T[],
    w: WorkloadEntry,
  ): readonly T[] {
    const root = settings.rootNamespace;
    // The list is sorted by namespace, then name: the two groups are joined in namespace order to keep that.
    const groups =
      w.namespace === root
        ? [groupOf(list, root)]
        : w.namespace < root
          ? [groupOf(list, w.namespace), groupOf(list, root)]
          : [groupOf(list, root), groupOf(list, w.namespace)];
    return groups.flatMap((g) => g.filter((p) => selectorMatches(p.selector, w.labels)));
  }

  const model: MeshModel = {
    version,
    settings,
    serviceAccounts: sas.all,
    services: svcs.all,
    workloads: wls.all,
    peerAuthentications: pas.all,
    authorizationPolicies: aps.all,
    requestAuthentications: ras.all,
    sidecars: scs.all,
    serviceEntries: ses.all,
    destinationRules: drs.all,
    serviceAccount: (namespace, name) => sas.byKey.get(nsKey(namespace, name)),
    service: (namespace, name) => svcs.byKey.get(nsKey(namespace, name)),
    workload: (namespace, name) => wls.byKey.get(nsKey(namespace, name)),
    workloadsOf: (s) => select().workloadsOf.get(nsKey(s.namespace, s.name)) ?? [],
    servicesOf: (w) => select().servicesOf.get(nsKey(w.namespace, w.name)) ?? [],
    serviceAccountsOf(s) {
      const seen = new Map<string, ServiceAccountRef>();
      for (const w of model.workloadsOf(s)) seen.set(nsKey(w.serviceAccount.namespace, w.serviceAccount.name), w.serviceAccount);
      return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, ref]) => ref);
    },
    peerAuthenticationsFor: (w) => applying(pas.all, w),
    authorizationPoliciesFor: (w) => applying(aps.all, w),
    requestAuthenticationsFor: (w) => applying(ras.all, w),
    sidecarFor(w) {
      const own = groupOf(scs.all, w.namespace);
      return (
        own.find((s) => s.selector !== undefined && selectorMatches(s.selector, w.labels)) ??
        own.find((s) => s.selector === undefined) ??
        groupOf(scs.all, settings.rootNamespace).find((s) => s.selector === undefined)
      );
    },
    workloadsOfEntry: (e) =>
      e.workloadSelector ? wls.all.filter((w) => w.namespace === e.namespace && selectorMatches(e.workloadSelector, w.labels)) : [],
  };
  Object.freeze(model);
  objectHashes.set(model, { objects: hashes, settings: settingsHash });
  return model;
}

/** The port a workload listens on for a service port: the WorkloadEntry's `ports[name]`, else the targetPort. */
export function workloadPortFor(port: ServicePort, workload: WorkloadEntry): number {
  return (port.name !== undefined ? workload.ports[port.name] : undefined) ?? port.targetPort;
}

// Istio's protocol selection by port-name prefix (`http-web`, `grpc`, ...), used when appProtocol is absent.
const NAMED_PROTOCOLS = new Set(['http', 'http2', 'https', 'grpc', 'grpc-web', 'tcp', 'tls', 'mongo', 'mysql', 'redis']);

/** The application protocol of a service port, lowercased: `appProtocol`, else Istio's port-name prefix; undefined when unknown. */
export function applicationProtocol(port: ServicePort): string | undefined {
  if (port.appProtocol) return port.appProtocol.toLowerCase();
  if (!port.name) return undefined;
  const name = port.name.toLowerCase();
  if (NAMED_PROTOCOLS.has(name)) return name;
  if (name.startsWith('grpc-web-') || name === 'grpc-web') return 'grpc-web';
  const prefix = name.split('-')[0] ?? '';
  return NAMED_PROTOCOLS.has(prefix) ? prefix : undefined;
}
