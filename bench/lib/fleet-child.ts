// A fleet of simulated proxies, run in a child process so that the bench process
// measures the server alone (its heap and RSS hold no client state) and clients get
// the second core. Started by fleet.ts; steered over IPC (fleet-protocol.ts).
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient, DiscoveryRequest, DiscoveryResponse } from '../../src/proto/index.js';
import { serveParent } from './child.js';
import type { FleetCommand, FleetStats, OpenAds, OpenEcho } from './fleet-protocol.js';

interface Stream {
  write(m: unknown): boolean;
  end(): void;
  on(event: string, cb: (...a: never[]) => void): unknown;
}

const clients: grpc.Client[] = [];
const streams: Stream[] = [];
let messages = 0;
let bytes = 0;
let errors = 0;
let lastResourceCount = 0;

function channelOptions(): grpc.ClientOptions {
  // Own subchannel pool: otherwise grpc-js shares one connection between every
  // client of the same target, and "N streams per channel" would mean nothing.
  return { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };
}

function track(s: Stream): void {
  streams.push(s);
  s.on('error', () => {
    errors++;
  });
}

/** Envoy-like SotW ADS clients: wildcard subscription to one type, ACK every response. */
function openAds(c: OpenAds): void {
  let client: AggregatedDiscoveryServiceClient | undefined;
  for (let i = 0; i < c.count; i++) {
    if (i % c.perChannel === 0) {
      client = new AggregatedDiscoveryServiceClient(c.address, grpc.credentials.createInsecure(), channelOptions());
      clients.push(client);
    }
    const s = client!.streamAggregatedResources();
    track(s as unknown as Stream);
    s.on('data', (r: DiscoveryResponse) => {
      messages++;
      lastResourceCount = r.resources.length;
      // ACK: the version and nonce of the response, no node (Envoy with
      // set_node_on_first_message_only, as Istio configures it), same (empty) names.
      s.write(DiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce }));
    });
    // Empty resource_names on the first request: the legacy wildcard, as Envoy asks for CDS.
    s.write(DiscoveryRequest.fromPartial({ node: { id: `${c.nodePrefix}${i}`, cluster: 'bench' }, typeUrl: c.typeUrl }));
  }
}

/** Bare bidi streams with identity serializers: the grpc-js floor. */
function openEcho(c: OpenEcho): void {
  const Ctor = grpc.makeGenericClientConstructor(
    {
      chat: {
        path: c.path,
        requestStream: true,
        responseStream: true,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    'BenchEcho',
  );
  const reply = Buffer.alloc(c.replyBytes, 7);
  const hello = Buffer.from('hello');
  let client: grpc.Client | undefined;
  for (let i = 0; i < c.count; i++) {
    if (i % c.perChannel === 0) {
      client = new Ctor(c.address, grpc.credentials.createInsecure(), channelOptions());
      clients.push(client);
    }
    const s = (client as unknown as { chat(): grpc.ClientDuplexStream<Buffer, Buffer> }).chat();
    track(s as unknown as Stream);
    s.on('data', (b: Buffer) => {
      messages++;
      bytes += b.length;
      if (!c.ackLikeAds) return void s.write(reply);
      // The same client work as an ADS client: decode the response, encode the ACK.
      const r = DiscoveryResponse.decode(b);
      s.write(
        Buffer.from(
          DiscoveryRequest.encode(
            DiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce }),
          ).finish(),
        ),
      );
    });
    s.write(hello);
  }
}

function closeAll(): void {
  for (const s of streams.splice(0)) s.end();
  for (const c of clients.splice(0)) c.close();
}

const stats = (): FleetStats => {
  const cpu = process.cpuUsage();
  return { streams: streams.length, messages, bytes, errors, lastResourceCount, cpuMs: (cpu.user + cpu.system) / 1000 };
};

serveParent<FleetCommand, FleetStats>(
  (m) => {
    if (m.cmd === 'open-ads') openAds(m);
    else if (m.cmd === 'open-echo') openEcho(m);
    else if (m.cmd === 'close') closeAll();
    return stats();
  },
  // The parent going away (normally or not) ends the fleet.
  closeAll,
);
