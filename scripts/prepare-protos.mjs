// Builds build/protos: one merged proto tree from the Envoy API that ships in
// @grpc/grpc-js-xds (deps/), plus our own protos (protos/), for `buf generate`.
//
// Why a copy: the protoc-gen-validate in that package predates
// StringRules.ignore_empty, which a few Envoy files use, so the copy adds that one
// field with the number upstream gave it (26). node_modules is never edited.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const deps = join(pkgDir, 'deps');
const out = 'build/protos';
const roots = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const root of roots) {
  cpSync(join(deps, root), out, {
    recursive: true,
    filter: (src) => src.endsWith('.proto') || statSync(src).isDirectory(),
  });
}
if (existsSync('protos')) cpSync('protos', out, { recursive: true });

const validatePath = join(out, 'validate/validate.proto');
const validate = readFileSync(validatePath, 'utf8');
const anchor = /message StringRules \{[\s\S]*?\n\}/;
const match = anchor.exec(validate);
if (!match) throw new Error(`${validatePath}: message StringRules not found; the patch needs revisiting`);
if (!/ignore_empty/.test(match[0])) {
  const patched = match[0].replace(
    /\n\}$/,
    '\n\n    // Added by scripts/prepare-protos.mjs (upstream field 26).\n    optional bool ignore_empty = 26;\n}',
  );
  writeFileSync(validatePath, validate.replace(match[0], patched));
}
console.log(`prepare-protos: ${out} ready (${roots.join(', ')}${existsSync('protos') ? ', protos' : ''})`);
