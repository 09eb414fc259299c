// The agent's SDS server: the same xDS server the control plane runs (SotW and delta),
// on a Unix domain socket, over one snapshot that every connecting node gets: `default`
// (the agent's SVID and key) and `ROOTCA` (the trust bundle). Only the local Envoy can
// reach the socket: it is made owner-only, and that is the credential.
import { chmodSync, existsSync, lstatSync, mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SDS_DEFAULT, SDS_ROOTCA } from '../generate/index.js';
import type { SpiffeId } from '../identity/index.js';
import { err, ok, unwrap, type Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { Secret, TypeUrl } from '../proto/index.js';
import { createSnapshot, encodedResource, type Snapshot, type SnapshotSource } from '../snapshot/index.js';
import { createGrpcServer, createXdsServer, shutdown, type XdsHooks } from '../xds/index.js';

/** What the agent serves now: its SVID (absent once expired) and the trust bundle. */
export interface SdsContent {
  readonly svid?: { readonly chainPem: string; readonly keyPem: string };
  readonly rootsPem: string;
}

/** The agent's SDS endpoint. */
export interface SdsServer {
  /** Replaces what every connected and future Envoy gets. */
  publish(content: SdsContent): void;
  stop(): Promise<void>;
}

/** Builds the snapshot of the two secrets. */
export function sdsSnapshot(content: SdsContent): Snapshot {
  const resources = [
    encodedResource(
      TypeUrl.Secret,
      SDS_ROOTCA,
      Secret,
      Secret.fromPartial({ name: SDS_ROOTCA, validationContext: { trustedCa: { inlineString: content.rootsPem } } }),
    ),
  ];
  if (content.svid)
    resources.push(
      encodedResource(
        TypeUrl.Secret,
        SDS_DEFAULT,
        Secret,
        Secret.fromPartial({
          name: SDS_DEFAULT,
          tlsCertificate: { certificateChain: { inlineString: content.svid.chainPem }, privateKey: { inlineString: content.svid.keyPem } },
        }),
      ),
    );
  return unwrap(createSnapshot(resources)); // two distinct names: cannot fail
}

/** One snapshot for whichever node connects. */
function createSingleSnapshotSource(): SnapshotSource & { set(s: Snapshot): void } {
  let current: Snapshot | undefined;
  const watchers = new Set<(s: Snapshot) => void>();
  return {
    set(s) {
      if (current?.version === s.version) return;
      current = s;
      for (const w of watchers) w(s);
    },
    watch(_proxy, onSnapshot) {
      watchers.add(onSnapshot);
      if (current) onSnapshot(current);
      return ok(() => void watchers.delete(onSnapshot));
    },
  };
}

/** Starts serving SDS on a Unix socket (a stale socket file left by a crash is replaced). */
export async function startSdsServer(deps: {
  socketPath: string;
  identity: SpiffeId;
  log: Logger;
  hooks?: XdsHooks;
}): Promise<Result<SdsServer>> {
  const source = createSingleSnapshotSource();
  const xds = createXdsServer({
    snapshots: source,
    log: deps.log,
    hooks: deps.hooks,
    // Reaching the owner-only socket is the proof: the peer is the local Envoy of this workload.
    authenticate: async () => ok({ identity: deps.identity, via: 'unix-socket' }),
  });
  const server = createGrpcServer();
  xds.register(server);
  if (existsSync(deps.socketPath)) {
    if (!lstatSync(deps.socketPath).isSocket()) return err(`${deps.socketPath} exists and is not a socket; not replacing it`);
    unlinkSync(deps.socketPath);
  }
  // The socket is made in a private directory beside the target, made owner-only, then
  // renamed into place: at no moment can another user connect and wait for the key.
  let staging: string;
  try {
    staging = mkdtempSync(join(dirname(deps.socketPath), `.${basename(deps.socketPath)}-`));
  } catch (e) {
    return err(`cannot prepare ${deps.socketPath}: ${(e as Error).message}`);
  }
  const staged = join(staging, 'sds.sock');
  const bound = await new Promise<Result<void>>((resolve) =>
    server.bindAsync(`unix:${staged}`, grpc.ServerCredentials.createInsecure(), (e) =>
      resolve(e ? err(`cannot listen on ${deps.socketPath}: ${e.message}`) : ok(undefined)),
    ),
  );
  try {
    if (!bound.ok) {
      server.forceShutdown();
      return bound;
    }
    chmodSync(staged, 0o600);
    renameSync(staged, deps.socketPath);
  } catch (e) {
    server.forceShutdown();
    return err(`cannot listen on ${deps.socketPath}: ${(e as Error).message}`);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return ok({
    publish: (content) => source.set(sdsSnapshot(content)),
    async stop() {
      xds.closeAll();
      await shutdown(server, 1_000);
      if (existsSync(deps.socketPath)) unlinkSync(deps.socketPath);
    },
  });
}
