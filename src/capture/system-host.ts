import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { CaptureHost } from './apply.js';

// Capability bits from linux/capability.h.
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const RUN_TIMEOUT_MS = 30_000;

function effectiveCaps(): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m === null ? undefined : BigInt(`0x${m[1]}`);
  } catch {
    return undefined;
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

const has = (caps: bigint, bit: bigint) => (caps & (1n << bit)) !== 0n;

/** Returns the CaptureHost of this machine: /proc for capabilities, `ip netns`, getent and iptables as child processes. */
export function systemCaptureHost(): CaptureHost {
  return {
    privilegeProblem(needsNamespace) {
      const caps = effectiveCaps() ?? 0n;
      const missing = [
        ...(has(caps, CAP_NET_ADMIN) ? [] : ['CAP_NET_ADMIN (to change iptables)']),
        // `ip netns exec` joins the namespace with setns(2) and remounts /sys, which take CAP_SYS_ADMIN.
        ...(needsNamespace && !has(caps, CAP_SYS_ADMIN) ? ['CAP_SYS_ADMIN (to enter a network namespace)'] : []),
      ];
      if (missing.length === 0) return undefined;
      const who = process.getuid?.() === 0 ? 'root without' : `uid ${process.getuid?.() ?? '?'} lacks`;
      return `capture needs privilege: ${who} ${missing.join(' and ')}; run as root`;
    },
    missingCommands(names) {
      const dirs = (process.env.PATH ?? '').split(':').filter((d) => d !== '');
      return names.filter((n) => !dirs.some((d) => isExecutable(path.join(d, n))));
    },
    namespaceExists(name) {
      // `ip netns add` pins each namespace as a file under /run/netns.
      return fs.existsSync(`/run/netns/${name}`);
    },
    userExists(uid) {
      const r = spawnSync('getent', ['passwd', String(uid)], { encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
      if (r.error === undefined) return r.status === 0;
      // No getent (minimal images): read /etc/passwd directly.
      try {
        return fs
          .readFileSync('/etc/passwd', 'utf8')
          .split('\n')
          .some((l) => l.split(':')[2] === String(uid));
      } catch {
        return false;
      }
    },
    run(argv, input) {
      const r = spawnSync(argv[0], argv.slice(1), { input, encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
      if (r.error !== undefined) return { status: null, stdout: '', stderr: `${argv[0]}: ${r.error.message}` };
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
  };
}
