// Limits on what one config file may cost to load. A config over a limit is refused with the
// limit's name, file and line; the last good config keeps serving.

/** The config size limits; every one can be raised through ConfigLimits where config is loaded. */
export interface ConfigLimits {
  /** Bytes of one file, checked before it is read. */
  readonly maxFileBytes: number;
  /** YAML documents (objects) in one file. */
  readonly maxDocumentsPerFile: number;
  /** Nodes that aliases add to one document once expanded, counting every use of an alias. */
  readonly maxAliasExpansion: number;
  /** Nesting of mappings and lists in one document, aliases expanded. */
  readonly maxDepth: number;
  /** Characters of one string (key or value). */
  readonly maxStringLength: number;
}

/** Each limit with its default and what it guards against: the one table to read or extend. */
export const CONFIG_LIMITS: Readonly<Record<keyof ConfigLimits, { readonly default: number; readonly why: string }>> = {
  // 10,000 services with their workloads and accounts are about 6 MB; room for several times that.
  maxFileBytes: { default: 32 * 1024 * 1024, why: 'a file too large to read and parse in reasonable time and memory' },
  maxDocumentsPerFile: { default: 200_000, why: 'more objects in one file than one mesh holds' },
  // Real configs use a few anchors for repeated blocks; a billion-laughs document needs millions.
  maxAliasExpansion: { default: 10_000, why: 'aliases expanding exponentially, the "billion laughs" attack' },
  maxDepth: { default: 64, why: 'nesting deep enough to exhaust the stack of recursive readers' },
  // An inline JWKS with several RSA keys is a few KiB; certificates and keys never go in config.
  maxStringLength: { default: 128 * 1024, why: 'one huge string held and copied through every stage' },
};

/** The default limits, from CONFIG_LIMITS. */
export const DEFAULT_CONFIG_LIMITS: ConfigLimits = Object.freeze(
  Object.fromEntries(Object.entries(CONFIG_LIMITS).map(([k, v]) => [k, v.default])) as unknown as ConfigLimits,
);

/** The default limits with some raised or lowered. */
export function configLimits(overrides: Partial<ConfigLimits> = {}): ConfigLimits {
  return Object.freeze({ ...DEFAULT_CONFIG_LIMITS, ...overrides });
}

/** The message for a value over a limit, naming the limit so an operator knows what to raise. */
export function overLimit(limit: keyof ConfigLimits, limits: ConfigLimits, what: string): string {
  return `${what}: over the limit ${limit}=${limits[limit]}, which guards against ${CONFIG_LIMITS[limit].why}; raise ${limit} if this config is intended`;
}
