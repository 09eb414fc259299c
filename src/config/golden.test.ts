import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { loadConfig } from './index.js';

// Golden pairs: testdata/<case>.in.yaml (or a directory <case>.in/) → testdata/<case>.out.yaml,
// which lists every diagnostic with file:line:column and field path. UPDATE_GOLDEN=1 rewrites them.
const testdata = fileURLToPath(new URL('../../../src/config/testdata/', import.meta.url));

function cases(): { name: string; input: string; out: string }[] {
  return readdirSync(testdata)
    .filter((n) => n.endsWith('.in.yaml') || n.endsWith('.in'))
    .sort()
    .map((n) => {
      const name = n.replace(/\.in(\.yaml)?$/, '');
      return { name, input: join(testdata, n), out: join(testdata, `${name}.out.yaml`) };
    });
}

describe('config golden cases', () => {
  for (const c of cases()) {
    it(c.name, async () => {
      const result = await loadConfig([c.input]);
      const actual = {
        model: result.model !== undefined,
        diagnostics: result.diagnostics.map((d) => ({
          at: `${relative(testdata, d.file)}:${d.line}:${d.column}`,
          severity: d.severity,
          path: d.path,
          message: d.message.replaceAll(testdata, ''),
        })),
      };
      if (process.env.UPDATE_GOLDEN) writeFileSync(c.out, stringify(actual, { lineWidth: 0 }));
      assert.deepEqual(actual, parse(readFileSync(c.out, 'utf8')));
    });
  }
});
