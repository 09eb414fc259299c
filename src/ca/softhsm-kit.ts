// Test kit for SoftHSM2 (Debian's softhsm2): a token directory and softhsm2.conf in a temp
// directory, a token initialized with softhsm2-util, removed afterwards. SOFTHSM2_CONF is set
// for this process (SoftHSM2 reads it at C_Initialize) and given to child servers through env().
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's SoftHSM2 PKCS#11 module. */
export const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** A SoftHSM2 token in a temp directory. */
export interface SoftHsm {
  readonly module: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly soPin: string;
  readonly dir: string;
  readonly confFile: string;
  /** A file holding the user PIN (0600), for --ca-pkcs11-pin-file. */
  readonly pinFile: string;
  /** The environment a child process needs to see this token. */
  env(): NodeJS.ProcessEnv;
  /** Initializes another token in the same directory. */
  addToken(label: string): void;
  /** Moves the token directory away (the token disappears for the next C_Initialize, and its objects go invalid). */
  takeAway(): void;
  /** Brings the token directory back. */
  bringBack(): void;
  /** Removes everything and restores SOFTHSM2_CONF. */
  remove(): void;
}

/** Whether SoftHSM2 is installed (the Makefile's softhsm target installs it). */
export const softHsmInstalled = (): boolean => existsSync(SOFTHSM2_MODULE);

/** Creates a temp SoftHSM2 configuration with one initialized token and points this process at it. */
export function createSoftHsm(opts: { readonly tokenLabel?: string; readonly pin?: string } = {}): SoftHsm {
  if (!softHsmInstalled()) throw new Error(`${SOFTHSM2_MODULE} is missing: install softhsm2 (make softhsm)`);
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-softhsm-'));
  const tokens = join(dir, 'tokens');
  const away = join(dir, 'tokens-away');
  mkdirSync(tokens, { mode: 0o700 });
  const confFile = join(dir, 'softhsm2.conf');
  writeFileSync(confFile, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const tokenLabel = opts.tokenLabel ?? 'meshpilot-test';
  const pin = opts.pin ?? '4321';
  const soPin = '87654321';
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  const previous = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = confFile;
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, SOFTHSM2_CONF: confFile });
  const addToken = (label: string) => {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin], {
      env: env(),
      stdio: 'pipe',
    });
  };
  addToken(tokenLabel);
  return {
    module: SOFTHSM2_MODULE,
    tokenLabel,
    pin,
    soPin,
    dir,
    confFile,
    pinFile,
    env,
    addToken,
    takeAway: () => renameSync(tokens, away),
    bringBack: () => renameSync(away, tokens),
    remove() {
      if (previous === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previous;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
