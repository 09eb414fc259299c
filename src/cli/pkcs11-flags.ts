// The --ca-pkcs11-* flags shared by `serve` and the `ca` commands: all four or none.
import { Option } from 'commander';
import type { Command } from 'commander';
import { readPinFile } from '../ca/index.js';
import type { Pkcs11KeyRef } from '../ca/index.js';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';

/** The flags as commander gives them. */
export interface Pkcs11Flags {
  caPkcs11Module?: string;
  caPkcs11Token?: string;
  caPkcs11Key?: string;
  caPkcs11PinFile?: string;
}

const FLAGS: readonly (readonly [keyof Pkcs11Flags, string, string])[] = [
  [
    'caPkcs11Module',
    '--ca-pkcs11-module <path>',
    'PKCS#11 module (shared library) holding the CA key, e.g. /usr/lib/softhsm/libsofthsm2.so',
  ],
  ['caPkcs11Token', '--ca-pkcs11-token <label>', 'label of the token holding the CA key'],
  ['caPkcs11Key', '--ca-pkcs11-key <label>', 'label of the CA key in the token (ECDSA P-256, not extractable)'],
  ['caPkcs11PinFile', '--ca-pkcs11-pin-file <file>', 'file holding the token user PIN (one line; keep it 0600)'],
];

/** Adds the four --ca-pkcs11-* options to a command. */
export function addPkcs11Options(cmd: Command): Command {
  for (const [, flags, description] of FLAGS) cmd.addOption(new Option(flags, description));
  return cmd;
}

const flagName = (f: string) => f.split(' ')[0]!;

/** The token reference the flags give (undefined when none is set); the error names the missing flags or the PIN file. */
export function pkcs11RefFromFlags(f: Pkcs11Flags, log?: Logger): Result<Pkcs11KeyRef | undefined, string> {
  const given = FLAGS.filter(([k]) => f[k] !== undefined);
  if (given.length === 0) return ok(undefined);
  const missing = FLAGS.filter(([k]) => f[k] === undefined).map(([, flags]) => flagName(flags));
  if (missing.length > 0) return err(`a CA key in a PKCS#11 token needs all four --ca-pkcs11 flags; missing: ${missing.join(', ')}`);
  const pin = readPinFile(f.caPkcs11PinFile!, log);
  if (!pin.ok) return err(`--ca-pkcs11-pin-file: ${pin.error}`);
  return ok({ module: f.caPkcs11Module!, tokenLabel: f.caPkcs11Token!, keyLabel: f.caPkcs11Key!, pin: pin.value });
}
