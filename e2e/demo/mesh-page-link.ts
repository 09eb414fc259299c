// The demo's pointer to the mesh page: `meshpilot serve` prints the page's address and a
// one-time login link on stdout; this finds them in the control plane's output and prints them.
import type { Child } from '../kit/processes.js';

const LINK = /one-time login link: (http:\/\/\S+)/;

/** Prints the mesh page's address and the one-time link `meshpilot serve` printed; resolves with the link (undefined if none came within 5 s). */
export async function printMeshPageLink(
  cp: { adminPort: number; current(): Child },
  write: (s: string) => void = console.log,
): Promise<string | undefined> {
  let line: string | undefined;
  try {
    line = await cp.current().waitForLog((l) => LINK.test(l), 'the mesh page link', 5_000);
  } catch {
    write(
      `  mesh page: http://127.0.0.1:${cp.adminPort}/ (no one-time link printed: sign in with the admin-token file of the state directory)`,
    );
    return undefined;
  }
  const link = LINK.exec(line)![1]!;
  write(`  mesh page: http://127.0.0.1:${cp.adminPort}/ — open this one-time link while the demo runs (it works once): ${link}`);
  return link;
}
