// How one config object is kept in a store: under `<Kind>/<namespace>/<name>` (namespace `-` for the
// mesh-wide MeshConfig), as the YAML text it was applied from, with a comment naming where that was.
import { Document, isMap, isSeq, parseAllDocuments, type Node } from 'yaml';
import { parseTexts } from './build-model.js';
import { hasErrors, type ConfigDiagnostic } from './diagnostics.js';
import type { ConfigLimits } from './limits.js';
import { ACCEPTED_KINDS, type ParsedObject } from './parse-document.js';

/** The namespace segment of a key for an object that has none (MeshConfig); not a DNS label, so it never collides. */
export const CLUSTER_SCOPED = '-';

/** Kind, namespace and name of a stored object: what its key says. */
export interface ObjectIdentity {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

/** The store key of an object. */
export function keyOf(id: ObjectIdentity): string {
  return `${id.kind}/${id.namespace}/${id.name}`;
}

/** Reads a key back into an identity, or undefined when it is not one meshpilot writes. */
export function parseKey(key: string): ObjectIdentity | undefined {
  const parts = key.split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  const [kind, namespace, name] = parts as [string, string, string];
  if (!Object.hasOwn(ACCEPTED_KINDS, kind)) return undefined;
  if ((kind === 'MeshConfig') !== (namespace === CLUSTER_SCOPED)) return undefined;
  return { kind, namespace, name };
}

/** The identity of a parsed object. */
export function identityOf(o: ParsedObject): ObjectIdentity {
  if (o.kind === 'MeshConfig') return { kind: o.kind, namespace: CLUSTER_SCOPED, name: o.name };
  return { kind: o.kind, namespace: o.value.namespace, name: o.value.name };
}

/**
 * Resolves what a user typed as KIND (`AuthorizationPolicy`, `authorizationpolicy`, `authorizationpolicies`)
 * to the kind's name, or undefined.
 */
export function resolveKind(typed: string): string | undefined {
  const t = typed.toLowerCase();
  for (const k of Object.keys(ACCEPTED_KINDS)) {
    const l = k.toLowerCase();
    const plural = l.endsWith('y') ? `${l.slice(0, -1)}ies` : `${l}s`;
    if (t === l || t === plural) return k;
  }
  return undefined;
}

/** One object cut out of a user's file, ready to be stored. */
export interface ObjectToStore {
  readonly key: string;
  readonly id: ObjectIdentity;
  /** Where it came from, for messages. */
  readonly file: string;
  readonly line: number;
  /** The stored value: a comment naming the source, then the object's YAML. */
  readonly value: string;
}

/**
 * The 1-based line of a character offset, found by binary search over the offsets where lines
 * start (computed once per file): counting newlines from the start for every document made
 * applying one file of 20,000 documents quadratic (over two minutes).
 */
function lineFinder(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

/** The YAML text of each document (each item of a `kind: List`), with the line it starts on. */
function pieces(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  const lineAt = lineFinder(text);
  for (const doc of parseAllDocuments(text, { prettyErrors: false })) {
    if (doc.errors.length > 0 || !doc.contents) continue;
    const root = doc.contents as Node;
    const kind = isMap(root) ? root.get('kind') : undefined;
    const items = isMap(root) ? (root.get('items', true) as Node | undefined) : undefined;
    if (typeof kind === 'string' && kind.endsWith('List') && items && isSeq(items)) {
      for (const item of items.items as Node[]) out.push({ text: new Document(item).toString(), line: lineAt(item.range?.[0] ?? 0) });
      continue;
    }
    const [start, , end] = doc.range;
    // The range starts at the document's `---` marker, when it has one: the stored text does not.
    const body = text.slice(start, end);
    const marker = /^---[^\n]*\n/.exec(body);
    const from = start + (marker ? marker[0].length : 0);
    out.push({ text: text.slice(from, end).replace(/\s*$/, '\n'), line: lineAt(from) });
  }
  return out;
}

/**
 * Cuts a config file into the objects meshpilot acts on, one per key. Documents of kinds meshpilot
 * skips are left out (the loader warns about them); the file is expected to have passed the loader.
 */
export function objectsToStore(
  fileName: string,
  text: string,
  opts: { readonly defaultNamespace?: string; readonly limits?: Partial<ConfigLimits> } = {},
): ObjectToStore[] {
  const out: ObjectToStore[] = [];
  for (const p of pieces(text)) {
    const parsed = parseTexts([{ fileName, text: p.text }], [], opts);
    for (const o of parsed.objects) {
      const id = identityOf(o);
      // A document without a namespace is stored with one: replicas must not read it with their own default.
      const body = o.kind !== 'MeshConfig' && !/^\s*namespace\s*:/m.test(p.text) ? withNamespace(p.text, id.namespace) : p.text;
      out.push({ key: keyOf(id), id, file: fileName, line: p.line, value: `# meshpilot apply: ${fileName}:${p.line}\n${body}` });
    }
  }
  return out;
}

// Adds metadata.namespace to a document that names none, keeping the rest of its text.
function withNamespace(text: string, namespace: string): string {
  const doc = parseAllDocuments(text)[0];
  if (!doc || !isMap(doc.contents)) return text;
  doc.setIn(['metadata', 'namespace'], namespace);
  return doc.toString();
}

/** A stored object read back: the parsed object, or why it cannot be used. */
export type DecodedObject =
  | { readonly ok: true; readonly object: ParsedObject; readonly diagnostics: readonly ConfigDiagnostic[] }
  | { readonly ok: false; readonly reason: string; readonly diagnostics: readonly ConfigDiagnostic[] };

/**
 * Parses one stored value with the loader `serve` uses for files, named by its key; refuses a key
 * meshpilot does not write, a value that does not parse, and an object that is not the one its key names.
 */
export function decodeStoredObject(key: string, displayKey: string, value: string, limits?: Partial<ConfigLimits>): DecodedObject {
  const id = parseKey(key);
  if (!id)
    return { ok: false, reason: 'not a key meshpilot writes (expected <Kind>/<namespace>/<name> of a kind it acts on)', diagnostics: [] };
  const parsed = parseTexts([{ fileName: displayKey, text: value }], [], {
    ...(id.namespace !== CLUSTER_SCOPED ? { defaultNamespace: id.namespace } : {}),
    ...(limits ? { limits } : {}),
  });
  if (hasErrors(parsed.diagnostics) || parsed.syntaxErrors) {
    const first = parsed.diagnostics.find((d) => d.severity === 'error');
    return {
      ok: false,
      reason: first ? `${first.path ? `${first.path}: ` : ''}${first.message} (line ${first.line ?? 1})` : 'unreadable',
      diagnostics: parsed.diagnostics,
    };
  }
  if (parsed.objects.length !== 1)
    return { ok: false, reason: `holds ${parsed.objects.length} objects, not one`, diagnostics: parsed.diagnostics };
  const object = parsed.objects[0]!;
  const got = keyOf(identityOf(object));
  if (got !== key) return { ok: false, reason: `holds ${got}, not the object its key names`, diagnostics: parsed.diagnostics };
  return { ok: true, object, diagnostics: parsed.diagnostics };
}
