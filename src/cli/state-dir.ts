// What commands that read a state directory say when it is not one: the directory, what is wrong
// with it, and the fix, instead of a bare ENOENT for some file inside it.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { STATE_FILE } from '../ca/index.js';

/** Why `stateDir` holds no CA (and what to do), or undefined when it holds one. */
export function missingCaState(stateDir: string): string | undefined {
  const dir = resolve(stateDir);
  if (existsSync(join(dir, STATE_FILE))) return undefined;
  let what = 'holds no CA (no ca.json)';
  try {
    if (!statSync(dir).isDirectory()) what = 'is not a directory';
  } catch {
    what = 'does not exist';
  }
  return `--state-dir ${stateDir}: ${dir} ${what}; check the path, or create the CA with 'meshpilot ca init --state-dir ${stateDir}'`;
}
