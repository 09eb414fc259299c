// The agent's other output: instead of serving SDS on a Unix socket, it keeps key.pem,
// cert-chain.pem, root-cert.pem and default-sds.yaml in a directory (the layout of
// `serve --secret-dir`, written whole and swapped by renaming `..data`), which Envoy reads
// through file-based SDS and reloads on every swap. This is how a sidecar's credential
// toward the control plane renews with no Envoy restart (`bootstrap --cert-dir`).
import { writeAccountFiles } from '../secrets/index.js';
import type { Logger } from '../observability/index.js';
import type { SdsContent, SdsServer } from './sds.js';

/** Publishes the agent's SVID as files in `dir`; an expired SVID is left in place (the control plane refuses it anyway) and logged. */
export function createFileSink(dir: string, log: Logger): SdsServer {
  return {
    publish(content: SdsContent) {
      if (!content.svid) {
        log.warn('certificate files left with an expired svid', { dir });
        return;
      }
      const r = writeAccountFiles(dir, content.svid, content.rootsPem);
      if (!r.ok) log.error('certificate files not written', { dir, cause: r.error });
      else log.info('certificate files written', { dir });
    },
    stop: async () => {},
  };
}
