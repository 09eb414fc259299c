// Typed, position-aware access to a parsed YAML document: every read checks the type, reports
// problems with file, line, column and field path, and records each field's position.
import { isAlias, isMap, isScalar, isSeq, visit, type Alias, type Document, type LineCounter, type Node } from 'yaml';
import type { SourcePosition } from '../model/index.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import { DEFAULT_CONFIG_LIMITS, overLimit, type ConfigLimits } from './limits.js';

// parse-document.ts builds a DocReader per document without a way to pass limits through, so the
// loader sets them around its synchronous parse with withConfigLimits.
let activeLimits: ConfigLimits = DEFAULT_CONFIG_LIMITS;

/** Runs a synchronous parse with these limits applied to every DocReader it creates. */
export function withConfigLimits<T>(limits: ConfigLimits, parse: () => T): T {
  const previous = activeLimits;
  activeLimits = limits;
  try {
    return parse();
  } finally {
    activeLimits = previous;
  }
}

// What the checker learns about each node, aliases expanded: how many nodes it stands for and how deep it nests.
interface NodeCost {
  readonly size: number;
  readonly depth: number;
}

function childrenOf(node: Node): Node[] {
  const out: Node[] = [];
  if (isMap(node)) {
    for (const pair of node.items) {
      if (pair.key) out.push(pair.key as Node);
      if (pair.value) out.push(pair.value as Node);
    }
  } else if (isSeq(node)) {
    for (const item of node.items) if (item) out.push(item as Node);
  }
  return out;
}

/** One value in the document, with its field path and position. */
export interface Field {
  readonly node: Node;
  readonly path: string;
  readonly at: SourcePosition;
}

/** A string read from the document, with the field that held it. */
export interface StringAt {
  readonly value: string;
  readonly field: Field;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Appends a map key to a field path: `spec.rules`, or `metadata.labels["app.kubernetes.io/name"]` for keys that are not identifiers. */
export function joinPath(path: string, key: string): string {
  if (!IDENT.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

function describe(node: Node): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return 'a string';
    if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
    if (typeof v === 'boolean') return 'a boolean';
  }
  return 'an unsupported value';
}

/** Reads one YAML document of one file, gathering diagnostics and field positions. */
export class DocReader {
  /** Field path → position of every field read so far. */
  readonly fields = new Map<string, SourcePosition>();
  // yaml's Alias.resolve scans the whole document on every call, which makes many aliases quadratic:
  // targets are found once, in one walk, with the same rule (the last anchor before the alias).
  private aliasTargets?: Map<Alias, Node>;
  // A document over a limit is reported once and not read at all.
  private readonly overLimit: boolean;
  /** Whose API the object belongs to, for "valid <api> field, not supported by meshpilot". */
  api = 'Istio';

  constructor(
    readonly file: string,
    private readonly lc: LineCounter,
    private readonly doc: Document,
    private readonly diagnostics: ConfigDiagnostic[],
  ) {
    this.overLimit = !this.checkLimits(activeLimits);
  }

  private aliasTarget(alias: Alias): Node | undefined {
    if (!this.aliasTargets) {
      const targets = new Map<Alias, Node>();
      const anchored = new Map<string, Node>();
      visit(this.doc, {
        Node: (_key, node) => {
          if (isAlias(node)) {
            const target = anchored.get(node.source);
            if (target) targets.set(node, target);
          } else if (node.anchor) anchored.set(node.anchor, node);
        },
      });
      this.aliasTargets = targets;
    }
    return this.aliasTargets.get(alias);
  }

  // Checks a document's string lengths, depth and alias expansion, and reports the first limit
  // broken; returns true when within limits. Walks are iterative: the depth is not known yet.
  private checkLimits(limits: ConfigLimits): boolean {
    const top = this.doc.contents as Node | null;
    if (!top) return true;
    const plain = this.checkTree(top, limits);
    return plain === 'has-aliases' ? this.checkExpanded(top, limits) : plain;
  }

  // The common case, a document without aliases, is a tree: one pass with a depth per node, no
  // memo. Returns 'has-aliases' as soon as an alias is seen, for checkExpanded to take over.
  private checkTree(top: Node, limits: ConfigLimits): boolean | 'has-aliases' {
    const stack: [Node, number][] = [[top, 0]];
    // Bounded: a tree has each node once, and a node is pushed once by its parent.
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (isAlias(node)) return 'has-aliases';
      if (isScalar(node)) {
        if (typeof node.value === 'string' && node.value.length > limits.maxStringLength) {
          this.error(
            this.posOf(node.range?.[0] ?? 0),
            '',
            overLimit('maxStringLength', limits, `a string of ${node.value.length} characters`),
          );
          return false;
        }
        continue;
      }
      if (depth + 1 > limits.maxDepth) {
        this.error(this.posOf(node.range?.[0] ?? 0), '', overLimit('maxDepth', limits, `nesting deeper than ${limits.maxDepth} levels`));
        return false;
      }
      for (const c of childrenOf(node)) stack.push([c, depth + 1]);
    }
    return true;
  }

  // Walks a document with aliases once, each node once, aliases counted at their expanded size.
  private checkExpanded(top: Node, limits: ConfigLimits): boolean {
    const cost = new Map<Node, NodeCost>();
    const open = new Set<Node>();
    let worstAlias: { node: Node; size: number } | undefined;
    const stack: { node: Node; children?: Node[] }[] = [{ node: top }];
    const fail = (node: Node, message: string): false => {
      this.error(this.posOf(node.range?.[0] ?? 0), '', message);
      return false;
    };
    // Bounded: a frame is pushed once per edge into a node not yet costed, and each node is costed once.
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const node = frame.node;
      if (!frame.children) {
        if (cost.has(node)) {
          stack.pop();
          continue;
        }
        if (isScalar(node) && typeof node.value === 'string' && node.value.length > limits.maxStringLength)
          return fail(node, overLimit('maxStringLength', limits, `a string of ${node.value.length} characters`));
        if (isAlias(node)) {
          const target = this.aliasTarget(node);
          frame.children = target ? [target] : [];
          if (target && open.has(target)) return fail(node, `alias *${node.source} refers to a node that contains it`);
        } else frame.children = childrenOf(node);
        open.add(node);
        for (const c of frame.children) if (!cost.has(c)) stack.push({ node: c });
        continue;
      }
      stack.pop();
      open.delete(node);
      let size = isAlias(node) ? 0 : 1;
      let depth = 0;
      for (const c of frame.children) {
        const k = cost.get(c)!;
        size += k.size;
        depth = Math.max(depth, k.depth);
      }
      if (isMap(node) || isSeq(node)) depth += 1;
      if (depth > limits.maxDepth) return fail(node, overLimit('maxDepth', limits, `nesting deeper than ${limits.maxDepth} levels`));
      if (isAlias(node) && size > (worstAlias?.size ?? 0)) worstAlias = { node, size };
      cost.set(node, { size, depth });
    }
    // Nodes added by aliases: the document as a reader walks it, less the nodes written in it.
    const added = cost.get(top)!.size - [...cost.keys()].filter((n) => !isAlias(n)).length;
    if (added > limits.maxAliasExpansion && worstAlias)
      return fail(worstAlias.node, overLimit('maxAliasExpansion', limits, `aliases expand this document by ${added} nodes`));
    return true;
  }

  /** Position of an offset in the file. */
  posOf(offset: number): SourcePosition {
    const p = this.lc.linePos(offset);
    return { line: Math.max(p.line, 1), column: Math.max(p.col, 1) };
  }

  /** The root field of the document, or undefined when the document is empty. */
  root(): Field | undefined {
    if (this.overLimit) return undefined;
    const node = this.resolve(this.doc.contents as Node | null);
    if (!node || (isScalar(node) && node.value === null)) return undefined;
    return this.field(node, '', this.posOf(node.range?.[0] ?? 0));
  }

  /** Reports an error at a field (or at a parent's position for a missing field). */
  error(at: SourcePosition, path: string, message: string): void {
    this.diagnostics.push({ severity: 'error', file: this.file, line: at.line, column: at.column, path, message });
  }

  /** Reports a note at a field: neither a problem nor a change of meaning. */
  info(at: SourcePosition, path: string, message: string): void {
    this.diagnostics.push({ severity: 'info', file: this.file, line: at.line, column: at.column, path, message });
  }

  /** Reports a warning at a field. */
  warn(at: SourcePosition, path: string, message: string): void {
    this.diagnostics.push({ severity: 'warning', file: this.file, line: at.line, column: at.column, path, message });
  }

  // Follows aliases to their anchored node; an alias without an anchor in this document is reported.
  private resolve(node: Node | null | undefined, path = ''): Node | undefined {
    let n = node ?? undefined;
    for (let i = 0; n && isAlias(n) && i < 100; i++) {
      const target = this.aliasTarget(n);
      if (!target) this.error(this.posOf(n.range?.[0] ?? 0), path, `alias *${n.source} has no anchor in this document`);
      n = target;
    }
    return n;
  }

  private field(node: Node, path: string, at: SourcePosition): Field {
    if (path !== '') this.fields.set(path, at);
    return { node, path, at };
  }

  private isNull(node: Node | undefined): boolean {
    return !node || (isScalar(node) && node.value === null);
  }

  /**
   * Reads a mapping and returns its non-null fields; keys outside `known` are reported as unknown,
   * keys in `unsupported` with the reason meshpilot does not support them.
   */
  map(f: Field, known: readonly string[], unsupported: Readonly<Record<string, string>> = {}): Record<string, Field> | undefined {
    if (!isMap(f.node)) {
      this.error(f.at, f.path, `must be a mapping, got ${describe(f.node)}`);
      return undefined;
    }
    const out: Record<string, Field> = {};
    for (const pair of f.node.items) {
      const keyNode = this.resolve(pair.key as Node | null);
      const keyAt = this.posOf(keyNode?.range?.[0] ?? f.node.range?.[0] ?? 0);
      if (!keyNode || !isScalar(keyNode) || (typeof keyNode.value !== 'string' && typeof keyNode.value !== 'number')) {
        this.error(keyAt, f.path, 'keys must be strings');
        continue;
      }
      const key = String(keyNode.value);
      const path = joinPath(f.path, key);
      if (key in unsupported) {
        this.error(keyAt, path, `valid ${this.api} field '${key}', not supported by meshpilot: ${unsupported[key]}`);
        continue;
      }
      if (!known.includes(key)) {
        this.error(keyAt, path, `unknown field '${key}'`);
        continue;
      }
      const value = this.resolve(pair.value as Node | null, path);
      if (this.isNull(value)) continue;
      out[key] = this.field(value as Node, path, value?.range ? this.posOf(value.range[0]) : keyAt);
    }
    return out;
  }

  /** Reads a mapping with arbitrary keys (labels, port maps): each entry with its key's position. */
  entries(f: Field): { key: string; keyAt: SourcePosition; value: Field }[] | undefined {
    if (!isMap(f.node)) {
      this.error(f.at, f.path, `must be a mapping, got ${describe(f.node)}`);
      return undefined;
    }
    const out: { key: string; keyAt: SourcePosition; value: Field }[] = [];
    for (const pair of f.node.items) {
      const keyNode = this.resolve(pair.key as Node | null);
      const keyAt = this.posOf(keyNode?.range?.[0] ?? f.node.range?.[0] ?? 0);
      if (!keyNode || !isScalar(keyNode) || (typeof keyNode.value !== 'string' && typeof keyNode.value !== 'number')) {
        this.error(keyAt, f.path, 'keys must be strings');
        continue;
      }
      const key = String(keyNode.value);
      const path = joinPath(f.path, key);
      const value = this.resolve(pair.value as Node | null, path) ?? keyNode;
      out.push({ key, keyAt, value: this.field(value, path, value === keyNode ? keyAt : this.posOf(value.range?.[0] ?? 0)) });
    }
    return out;
  }

  /** Reads a list; null items are reported. */
  list(f: Field): Field[] | undefined {
    if (!isSeq(f.node)) {
      this.error(f.at, f.path, `must be a list, got ${describe(f.node)}`);
      return undefined;
    }
    const out: Field[] = [];
    f.node.items.forEach((item, i) => {
      const path = `${f.path}[${i}]`;
      const node = this.resolve(item as Node | null, path);
      const at = this.posOf(node?.range?.[0] ?? f.node.range?.[0] ?? 0);
      if (this.isNull(node)) {
        this.error(at, path, 'must not be null');
        return;
      }
      out.push(this.field(node as Node, path, at));
    });
    return out;
  }

  /** Reads a string (no implicit conversion: `8080` and `true` are not strings). */
  str(f: Field, hint = ''): string | undefined {
    if (isScalar(f.node) && typeof f.node.value === 'string') return f.node.value;
    this.error(f.at, f.path, `must be a string, got ${describe(f.node)}${hint}`);
    return undefined;
  }

  /** Reads a non-empty string. */
  nonEmptyStr(f: Field): string | undefined {
    const s = this.str(f);
    if (s === '') {
      this.error(f.at, f.path, 'must not be empty');
      return undefined;
    }
    return s;
  }

  /** Reads an integer. */
  int(f: Field): number | undefined {
    if (isScalar(f.node) && typeof f.node.value === 'number' && Number.isInteger(f.node.value)) return f.node.value;
    this.error(
      f.at,
      f.path,
      `must be an integer, got ${isScalar(f.node) && typeof f.node.value === 'number' ? f.node.value : describe(f.node)}`,
    );
    return undefined;
  }

  /** Reads a number. */
  num(f: Field): number | undefined {
    if (isScalar(f.node) && typeof f.node.value === 'number') return f.node.value;
    this.error(f.at, f.path, `must be a number, got ${describe(f.node)}`);
    return undefined;
  }

  /** Reads a boolean (`true`/`false` only, as in YAML 1.2). */
  bool(f: Field): boolean | undefined {
    if (isScalar(f.node) && typeof f.node.value === 'boolean') return f.node.value;
    this.error(f.at, f.path, `must be a boolean, got ${describe(f.node)}`);
    return undefined;
  }

  /** Reads a list of strings; bad items are reported and left out. */
  strList(f: Field, hint = ''): StringAt[] {
    const items = this.list(f) ?? [];
    const out: StringAt[] = [];
    for (const item of items) {
      const value = this.str(item, hint);
      if (value !== undefined) out.push({ value, field: item });
    }
    return out;
  }
}
