// A static Envoy that serves TLS with a given certificate: the impostor of scenario 2.
const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** A bootstrap for an Envoy that answers mTLS on address:port with the given SVID and forwards to an app. */
export function impostorBootstrap(o: {
  address: string;
  port: number;
  chainPem: string;
  keyPem: string;
  rootPem: string;
  upstreamHost: string;
  upstreamPort: number;
}): object {
  return {
    static_resources: {
      listeners: [
        {
          name: 'impostor',
          address: { socket_address: { address: o.address, port_value: o.port } },
          filter_chains: [
            {
              transport_socket: {
                name: 'envoy.transport_sockets.tls',
                typed_config: {
                  '@type': TLS,
                  common_tls_context: {
                    tls_certificates: [{ certificate_chain: { inline_string: o.chainPem }, private_key: { inline_string: o.keyPem } }],
                    validation_context: { trusted_ca: { inline_string: o.rootPem } },
                  },
                },
              },
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: 'impostor',
                    route_config: {
                      virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }] }],
                    },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'app',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: 'app',
            endpoints: [
              { lb_endpoints: [{ endpoint: { address: { socket_address: { address: o.upstreamHost, port_value: o.upstreamPort } } } }] },
            ],
          },
        },
      ],
    },
  };
}
