// SPIFFE federation: our bundle endpoint, and the foreign bundles of the trust domains we federate with.
export {
  derToPem,
  encodeSpiffeBundle,
  parseSpiffeBundle,
  splitPem,
  type BundleProblem,
  type BundleProblemKind,
  type SpiffeBundle,
} from './bundle-format.js';
export { authenticatesEndpoint, fetchBundle, type BundleFetchRequest } from './bundle-client.js';
export { startBundleEndpoint, type BundleEndpoint, type ServingIdentity } from './bundle-endpoint.js';
export {
  createFederatedBundles,
  DEFAULT_REFRESH,
  readBundleFile,
  type FederatedBundles,
  type FederatedDomainConfig,
  type FederationStats,
  type ForeignBundle,
  type RefreshPolicy,
} from './federated-bundles.js';
