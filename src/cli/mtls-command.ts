// `meshpilot mtls report [--from W] [--to S]`: proof of mTLS per client and service port, asked of
// a running control plane (it holds the model, the snapshots, the ACK tracker and the SVIDs).
// Exit codes: 0 every pair agrees; 1 some pair is flagged; 2 no running control plane could be asked.
import { Command, Option } from 'commander';
import { formatMtlsReport, type MtlsPair } from '../observability/index.js';
import { adminEndpointOf, askAdmin } from './status-command.js';

/** Registers `meshpilot mtls report` on the program. */
export function registerMtlsCommand(program: Command, deps: { write?: (text: string) => void } = {}): Command {
  const write = deps.write ?? ((t: string) => void process.stdout.write(t));
  const mtls = program.command('mtls').description('mutual TLS between workloads');
  mtls
    .command('report')
    .description(
      'per client workload and service port: TLS mode, expected vs pushed vs ACKed SPIFFE IDs, server SVID; exit 1 when a pair is flagged',
    )
    .option('--from <ns/workload>', 'only this client workload')
    .option('--to <service>', 'only this service (host, or name.namespace)')
    .option('--state-dir <dir>', 'state directory of the running control plane (finds its admin port and token)')
    .option('--admin <url>', 'admin server URL, e.g. http://127.0.0.1:15014')
    .option('--token <token>', 'admin token (with --admin)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async function (
      this: Command,
      o: { from?: string; to?: string; stateDir?: string; admin?: string; token?: string; output: string },
    ) {
      const ep = adminEndpointOf(o);
      if ('exitCode' in ep) return this.error(ep.message, { exitCode: ep.exitCode });
      const q = new URLSearchParams();
      if (o.from !== undefined) q.set('from', o.from);
      if (o.to !== undefined) q.set('to', o.to);
      const r = await askAdmin(ep, 'GET', `/debug/mtls-report?${q.toString()}`);
      if (!r.ok) return this.error(r.error.message, { exitCode: r.error.exitCode });
      if (r.status !== 200) return this.error(`error: the admin server answered ${r.status}: ${JSON.stringify(r.body)}`, { exitCode: 2 });
      const rows = r.body as MtlsPair[];
      write(o.output === 'json' ? JSON.stringify(rows, null, 2) + '\n' : formatMtlsReport(rows));
      process.exitCode = rows.some((p) => p.problems.length > 0) ? 1 : 0;
    });
  return mtls;
}
