import { readFileSync } from 'node:fs';

// package.json sits three levels above the compiled file (dist/src/cli/version.js), and is
// read at run time so the version has a single source.
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

/** The version in meshpilot's package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { name?: string; version?: unknown };
  if (pkg.name !== 'meshpilot' || typeof pkg.version !== 'string')
    throw new Error(`${PACKAGE_JSON.pathname}: not meshpilot's package.json`);
  return pkg.version;
}
