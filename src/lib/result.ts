/** A value or the reason there is none: expected failures are values, bugs throw. */
export type Result<T, E = string> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

/** Wraps a value as a successful result. */
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });

/** Wraps a reason as a failed result. */
export const err = <E = string>(error: E): Result<never, E> => ({ ok: false, error });

/** Returns the value or throws: for literals and tests only, never for input. */
export function unwrap<T, E>(r: Result<T, E>): T {
  if (r.ok) return r.value;
  throw new Error(typeof r.error === 'string' ? r.error : JSON.stringify(r.error));
}

/** One problem found in input, with the path of the field that holds it. */
export interface Diagnostic {
  readonly path: string;
  readonly message: string;
  /** Source position, when the input came from a file. */
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
}

/** Formats a diagnostic as `file:line:col: path: message` for logs and CLI output. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}${d.column ? `:${d.column}` : ''}` : ''}: ` : '';
  return `${where}${d.path ? `${d.path}: ` : ''}${d.message}`;
}
