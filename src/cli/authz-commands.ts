// `meshpilot authz check`: asks the compiled policy of a workload port, the same filters its
// sidecar receives, whether a request is allowed, and which policy and rule decided.
//
// Exit codes: 0 the request is allowed, 3 it is denied, 2 the question cannot be answered (bad
// config, unknown workload or port, bad flags). The first line of output is ALLOW or DENY.
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { portKind } from '../generate/index.js';
import { formatDiagnostic, systemClock, type Clock } from '../lib/index.js';
import { workloadPortFor, type MeshModel } from '../model/index.js';
import { formatReplayReport, replayAccessLog } from './authz-replay.js';
import { compileInboundPolicy, evaluate, verifyJwt, type AuthzRequest, type JwtClaims } from '../policy/index.js';

/** What the authz commands need from outside: injected so tests run them in-process. */
export interface AuthzCommandDeps {
  readonly clock?: Clock;
  /** Where normal output goes (default: stdout). */
  readonly write?: (text: string) => void;
  /** Where warnings go (default: stderr). */
  readonly warn?: (text: string) => void;
  /** Sets the process exit code for a verdict (default: process.exitCode). */
  readonly setExitCode?: (code: number) => void;
  /** Supplies jwksUri keys (default: none, so tokens of jwksUri issuers are refused, as a proxy without fetched keys would). */
  readonly fetchJwks?: (uri: string) => string | undefined;
}

/** Exit code of `authz check` when the request is denied. */
export const EXIT_DENY = 3;
/** Exit code of `authz check` when the question cannot be answered. */
export const EXIT_ERROR = 2;
/** Exit code of `authz replay` when some recorded verdict would change. */
export const EXIT_CHANGED = 1;

interface CheckOptions {
  config: string[];
  namespace?: string;
  destination: string;
  port?: string;
  sourcePrincipal?: string;
  sourceNamespace?: string;
  sourceIp?: string;
  remoteIp?: string;
  destinationIp?: string;
  method?: string;
  path?: string;
  host?: string;
  header: string[];
  sni?: string;
  jwt?: string;
  jwtInvalid?: boolean;
  jwtIssuer?: string;
  jwtSubject?: string;
  jwtAudience: string[];
  claim: string[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

function pair(s: string, flag: string): [string, string] | string {
  const eq = s.indexOf('=');
  if (eq <= 0) return `${flag} '${s}': write name=value`;
  return [s.slice(0, eq), s.slice(eq + 1)];
}

/** Registers `meshpilot authz check` on the program. */
export function registerAuthzCommands(program: Command, deps: AuthzCommandDeps = {}): Command {
  const write = deps.write ?? ((t: string) => void process.stdout.write(t));
  const warn = deps.warn ?? ((t: string) => void process.stderr.write(t));
  const setExitCode =
    deps.setExitCode ??
    ((c: number) => {
      process.exitCode = c;
    });
  const clock = deps.clock ?? systemClock;
  const authz = program.command('authz').description('explain authorization decisions');

  authz
    .command('check')
    .description('say whether a request to a workload is allowed (exit 0) or denied (exit 3), and which policy and rule decided')
    .requiredOption('--config <path>', 'config file or directory (repeatable)', collect, [] as string[])
    .option('--namespace <ns>', 'namespace of config documents that name none (as kubectl apply -n)')
    .requiredOption('--destination <ns/workload>', 'the WorkloadEntry receiving the request')
    .option('--port <n>', 'the Service port called (default: the first port of the first Service of the workload)')
    .option(
      '--source-principal <id>',
      'caller identity: <trust-domain>/ns/<ns>/sa/<sa> or a spiffe:// ID (omit both sources for a plaintext caller)',
    )
    .option('--source-namespace <ns>', "caller namespace (its service account is taken to be 'default')")
    .option('--source-ip <ip>', 'caller address (ipBlocks, source.ip)')
    .option('--remote-ip <ip>', 'original client address (remoteIpBlocks, remote.ip; default: --source-ip)')
    .option('--destination-ip <ip>', 'address called (destination.ip; default: the workload address)')
    .option('--method <m>', 'HTTP method', 'GET')
    .option('--path <p>', 'request path as sent, with query (normalized as the sidecar does)', '/')
    .option('--host <h>', 'Host / :authority')
    .option(
      '--header <name=value>',
      'request header (repeatable; repeated names are joined with "," as Envoy does)',
      collect,
      [] as string[],
    )
    .option('--sni <name>', 'TLS SNI (connection.sni)')
    .option('--jwt <token>', 'a JWT, verified with the keys the sidecar has')
    .option('--jwt-invalid', 'the request carries a token that does not verify')
    .option('--jwt-issuer <iss>', 'the request carries a valid token from this issuer (with --jwt-subject, --jwt-audience, --claim)')
    .option('--jwt-subject <sub>', 'the token subject')
    .option('--jwt-audience <aud>', 'a token audience (repeatable)', collect, [] as string[])
    .option('--claim <name=value>', 'a token claim (repeatable; a name given twice makes a list)', collect, [] as string[])
    .action(async function (this: Command, o: CheckOptions) {
      const fail = (msg: string): never => this.error(`error: ${msg}`, { exitCode: EXIT_ERROR, code: 'meshpilot.authz.error' });
      const loaded = await loadConfig(o.config, o.namespace !== undefined ? { defaultNamespace: o.namespace } : {});
      for (const d of loaded.diagnostics) if (d.severity === 'warning') warn(`warning: ${formatDiagnostic(d)}\n`);
      if (!loaded.model)
        return fail(
          `config has errors:\n${loaded.diagnostics
            .filter((d) => d.severity === 'error')
            .map(formatDiagnostic)
            .join('\n')}`,
        );
      const model: MeshModel = loaded.model;

      const [ns, name, ...rest] = o.destination.split('/');
      if (!ns || !name || rest.length > 0) return fail(`--destination '${o.destination}': write <namespace>/<workload>`);
      const workload = model.workload(ns, name);
      if (!workload) return fail(`no WorkloadEntry ${ns}/${name} in the config`);
      const ports = model.servicesOf(workload).flatMap((s) => s.ports);
      if (ports.length === 0) return fail(`no Service selects workload ${ns}/${name}: it has no inbound ports`);
      const wanted = o.port === undefined ? ports[0]!.port : Number(o.port);
      const sp = ports.find((p) => p.port === wanted);
      if (!sp)
        return fail(
          `workload ${ns}/${name} has no Service port ${o.port}; its ports: ${[...new Set(ports.map((p) => p.port))].join(', ')}`,
        );

      let principal: string | undefined;
      if (o.sourcePrincipal !== undefined && o.sourceNamespace !== undefined)
        return fail('give --source-principal or --source-namespace, not both');
      if (o.sourcePrincipal !== undefined)
        principal = o.sourcePrincipal.startsWith('spiffe://') ? o.sourcePrincipal : `spiffe://${o.sourcePrincipal}`;
      if (o.sourceNamespace !== undefined) principal = `spiffe://${model.settings.trustDomain}/ns/${o.sourceNamespace}/sa/default`;

      const headers: [string, string][] = [];
      for (const h of o.header) {
        const p = pair(h, '--header');
        if (typeof p === 'string') return fail(p);
        headers.push(p);
      }
      const claims: Record<string, unknown> = {};
      for (const c of o.claim) {
        const p = pair(c, '--claim');
        if (typeof p === 'string') return fail(p);
        const prev = claims[p[0]];
        claims[p[0]] = prev === undefined ? p[1] : Array.isArray(prev) ? [...(prev as string[]), p[1]] : [prev, p[1]];
      }

      // The sidecar's listener is on the Service port; PeerAuthentication counts workload ports.
      const protocol = portKind(sp);
      const compiled = compileInboundPolicy(model, workload, workloadPortFor(sp, workload), protocol, deps.fetchJwks ?? (() => undefined));
      for (const d of compiled.diagnostics) warn(`${d.severity}: ${formatDiagnostic(d)}\n`);

      let jwt: JwtClaims | 'invalid' | undefined;
      const jwtSources = [o.jwt !== undefined, o.jwtInvalid === true, o.jwtIssuer !== undefined].filter(Boolean).length;
      if (jwtSources > 1) return fail('give one of --jwt, --jwt-invalid, --jwt-issuer');
      if (o.jwt !== undefined) jwt = await verifyJwt(compiled, o.jwt, clock.now());
      else if (o.jwtInvalid) jwt = 'invalid';
      else if (o.jwtIssuer !== undefined)
        jwt = {
          iss: o.jwtIssuer,
          ...(o.jwtSubject !== undefined ? { sub: o.jwtSubject } : {}),
          ...(o.jwtAudience.length > 0 ? { aud: o.jwtAudience.length === 1 ? o.jwtAudience[0]! : o.jwtAudience } : {}),
          claims,
        };
      else if (o.claim.length > 0 || o.jwtSubject !== undefined) return fail('--claim and --jwt-subject need --jwt-issuer');

      const req: AuthzRequest = {
        port: sp.port,
        ...(principal !== undefined ? { sourcePrincipal: principal } : {}),
        ...(o.sourceIp !== undefined ? { sourceIp: o.sourceIp } : {}),
        ...(o.remoteIp !== undefined ? { remoteIp: o.remoteIp } : {}),
        destinationIp: o.destinationIp ?? workload.address,
        ...(protocol === 'http' ? { method: o.method, path: o.path, headers } : {}),
        ...(protocol === 'http' && o.host !== undefined ? { host: o.host } : {}),
        ...(o.sni !== undefined ? { sni: o.sni } : {}),
        ...(jwt !== undefined ? { jwt } : {}),
      };
      const d = evaluate(compiled, req);
      let out = `${d.verdict === 'allow' ? 'ALLOW' : 'DENY'}\n`;
      if (d.policy !== undefined) out += `  policy: ${d.policy}\n  rule: ${d.rule}\n`;
      if (d.envoyPolicy !== undefined) out += `  envoy policy: ${d.envoyPolicy}\n`;
      out += `  status: ${d.status === 0 ? 'connection refused' : d.status}\n`;
      out += `  reason: ${d.reason}\n`;
      out += `  port: ${sp.port} (${protocol}, mTLS ${compiled.mtlsMode})\n`;
      if (d.normalizedPath !== undefined) out += `  normalized path: ${d.normalizedPath}\n`;
      for (const a of d.audited) out += `  audited by: ${a}\n`;
      for (const r of d.dryRun) out += `  dry-run: ${r}\n`;
      if (d.externalAuthz) {
        const x = d.externalAuthz;
        const custom = model.authorizationPolicies.find((p) => `${p.namespace}/${p.name}` === x.policy);
        out += `  external authorizer: ${custom?.provider ?? '?'} (${x.cluster}), asked first by CUSTOM policy ${x.policy ?? x.envoyPolicy} rule ${x.rule ?? '?'}\n`;
        out +=
          d.verdict === 'allow'
            ? '  depends on the external authorizer: allowed only if it allows (denied, 403 by default, if it denies)\n'
            : '  denied whatever the external authorizer answers\n';
      }
      write(out);
      setExitCode(d.verdict === 'allow' ? 0 : EXIT_DENY);
    });
  authz
    .command('replay')
    .description(
      'decide recorded requests (a sidecar JSON access log) under a proposed config; print those whose verdict would change (exit 1), or none (exit 0)',
    )
    .requiredOption('--access-log <file>', 'JSON access log, one request per line (MeshConfig accessLog: true writes it)')
    .requiredOption('--config <path>', 'proposed config file or directory (repeatable)', collect, [] as string[])
    .option('--namespace <ns>', 'namespace of config documents that name none (as kubectl apply -n)')
    .option('--output <format>', 'text or json', 'text')
    .action(async function (this: Command, o: { accessLog: string; config: string[]; namespace?: string; output: string }) {
      const fail = (msg: string): never => this.error(`error: ${msg}`, { exitCode: EXIT_ERROR, code: 'meshpilot.authz.error' });
      if (o.output !== 'text' && o.output !== 'json') return fail(`--output '${o.output}': text or json`);
      const loaded = await loadConfig(o.config, o.namespace !== undefined ? { defaultNamespace: o.namespace } : {});
      for (const d of loaded.diagnostics) if (d.severity === 'warning') warn(`warning: ${formatDiagnostic(d)}\n`);
      if (!loaded.model)
        return fail(
          `config has errors:\n${loaded.diagnostics
            .filter((d) => d.severity === 'error')
            .map(formatDiagnostic)
            .join('\n')}`,
        );
      let text: string;
      try {
        text = await readFile(o.accessLog, 'utf8');
      } catch (e) {
        return fail(`--access-log ${o.accessLog}: ${(e as Error).message}`);
      }
      const report = replayAccessLog(loaded.model, text.split('\n'), deps.fetchJwks);
      write(o.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatReplayReport(report));
      setExitCode(report.changed.length > 0 ? EXIT_CHANGED : 0);
    });
  return authz;
}
