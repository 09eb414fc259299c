// `meshpilot apply` and `delete` against a config store: the whole config the store would hold
// afterwards is checked with the loader `serve` uses, and only then written, in one transaction
// that fails if another writer changed a key in between (then everything is read and checked again).
import { buildParsed, parseTexts, type ConfigText } from './build-model.js';
import { hasErrors, type ConfigDiagnostic } from './diagnostics.js';
import type { ConfigLimits } from './limits.js';
import type { ConfigObjectStore, StoreListing } from './object-store.js';
import type { ParsedObject } from './parse-document.js';
import { decodeStoredObject, objectsToStore, type ObjectIdentity, type ObjectToStore } from './stored-object.js';

/** How many times a write is read, checked and tried again after another writer got in first. */
const MAX_ATTEMPTS = 5;

/** Options of applyToStore and deleteFromStore. */
export interface StoreWriteOptions {
  /** The namespace of documents that name none (`apply -n`); default `default`. */
  readonly defaultNamespace?: string;
  readonly limits?: Partial<ConfigLimits>;
  /** Check only; write nothing. */
  readonly dryRun?: boolean;
}

/** What a write did, or every reason it was refused. */
export type StoreWriteResult =
  | {
      readonly ok: true;
      /** The store revision after the write (unchanged when nothing was written). */
      readonly revision: number;
      readonly created: readonly string[];
      readonly updated: readonly string[];
      readonly unchanged: readonly string[];
      readonly deleted: readonly string[];
      /** Warnings of the loader (skipped kinds, objects in the store it cannot use). */
      readonly diagnostics: readonly ConfigDiagnostic[];
    }
  | { readonly ok: false; readonly diagnostics: readonly ConfigDiagnostic[] };

// The stored objects, each read with the loader; those it cannot use are reported and left out.
function storedObjects(store: ConfigObjectStore, l: StoreListing, except: ReadonlySet<string>, limits?: Partial<ConfigLimits>) {
  const objects: ParsedObject[] = [];
  const diagnostics: ConfigDiagnostic[] = [];
  for (const o of l.objects) {
    if (except.has(o.key)) continue;
    const d = decodeStoredObject(o.key, store.displayKey(o.key), o.value, limits);
    if (d.ok) objects.push(d.object);
    else diagnostics.push({ severity: 'warning', file: store.displayKey(o.key), line: 1, path: '', message: `skipped: ${d.reason}` });
  }
  return { objects, diagnostics };
}

function check(
  store: ConfigObjectStore,
  l: StoreListing,
  except: ReadonlySet<string>,
  files: readonly ConfigText[],
  o: StoreWriteOptions,
): readonly ConfigDiagnostic[] {
  const kept = storedObjects(store, l, except, o.limits);
  const parsed = parseTexts(files, [], {
    ...(o.defaultNamespace !== undefined ? { defaultNamespace: o.defaultNamespace } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
  });
  const inputs = [...files.map((f) => ({ fileName: f.fileName })), ...l.objects.map((x) => ({ fileName: store.displayKey(x.key) }))];
  const built = buildParsed(inputs, {
    objects: [...parsed.objects, ...kept.objects],
    diagnostics: [...parsed.diagnostics],
    syntaxErrors: parsed.syntaxErrors,
  });
  return [...kept.diagnostics, ...built.diagnostics];
}

/** Checks files together with what the store holds and writes their objects, one key each. */
export async function applyToStore(
  store: ConfigObjectStore,
  files: readonly ConfigText[],
  o: StoreWriteOptions = {},
): Promise<StoreWriteResult> {
  for (let attempt = 1; ; attempt++) {
    const l = await store.list();
    const toStore: ObjectToStore[] = files.flatMap((f) =>
      objectsToStore(f.fileName, f.text, {
        ...(o.defaultNamespace !== undefined ? { defaultNamespace: o.defaultNamespace } : {}),
        ...(o.limits ? { limits: o.limits } : {}),
      }),
    );
    const keys = new Set(toStore.map((x) => x.key));
    const diagnostics = check(store, l, keys, files, o);
    if (hasErrors(diagnostics)) return { ok: false, diagnostics };
    if (toStore.length === 0)
      return {
        ok: false,
        diagnostics: [
          ...diagnostics,
          {
            severity: 'error',
            file: files.map((f) => f.fileName).join(', '),
            path: '',
            message: 'no object meshpilot acts on: nothing to apply',
          },
        ],
      };
    const stored = new Map(l.objects.map((x) => [x.key, x]));
    const puts = toStore.filter((x) => stored.get(x.key)?.value !== x.value);
    const changed = new Set(puts);
    const result = {
      created: puts.filter((x) => !stored.has(x.key)).map((x) => x.key),
      updated: puts.filter((x) => stored.has(x.key)).map((x) => x.key),
      unchanged: toStore.filter((x) => !changed.has(x)).map((x) => x.key),
      deleted: [],
      diagnostics,
    };
    if (o.dryRun || puts.length === 0) return { ok: true, revision: l.revision, ...result };
    const r = await store.commit({
      puts: puts.map((x) => ({ key: x.key, value: x.value })),
      deletes: [],
      expected: new Map(puts.map((x) => [x.key, stored.get(x.key)?.modRevision ?? 0])),
    });
    if (r.ok) return { ok: true, revision: r.revision, ...result };
    if (attempt >= MAX_ATTEMPTS)
      return {
        ok: false,
        diagnostics: [
          {
            severity: 'error',
            file: store.description,
            path: '',
            message: `${r.conflict} kept changing under this write (${attempt} attempts); try again`,
          },
        ],
      };
  }
}

/** Checks that the store's config stays valid without these objects, then deletes them. */
export async function deleteFromStore(
  store: ConfigObjectStore,
  ids: readonly ObjectIdentity[],
  o: StoreWriteOptions = {},
): Promise<StoreWriteResult> {
  const keys = ids.map((id) => `${id.kind}/${id.namespace}/${id.name}`);
  for (let attempt = 1; ; attempt++) {
    const l = await store.list();
    const stored = new Map(l.objects.map((x) => [x.key, x]));
    const missing = keys.filter((k) => !stored.has(k));
    if (missing.length > 0)
      return {
        ok: false,
        diagnostics: missing.map((k) => ({
          severity: 'error' as const,
          file: store.displayKey(k),
          path: '',
          message: 'not found in the config store',
        })),
      };
    const diagnostics = check(store, l, new Set(keys), [], o);
    if (hasErrors(diagnostics)) return { ok: false, diagnostics };
    const result = { created: [], updated: [], unchanged: [], deleted: keys, diagnostics };
    if (o.dryRun) return { ok: true, revision: l.revision, ...result };
    const r = await store.commit({ puts: [], deletes: keys, expected: new Map(keys.map((k) => [k, stored.get(k)!.modRevision])) });
    if (r.ok) return { ok: true, revision: r.revision, ...result };
    if (attempt >= MAX_ATTEMPTS)
      return {
        ok: false,
        diagnostics: [
          {
            severity: 'error',
            file: store.description,
            path: '',
            message: `${r.conflict} kept changing under this delete (${attempt} attempts); try again`,
          },
        ],
      };
  }
}
