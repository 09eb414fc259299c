import type { Diagnostic } from '../lib/index.js';

/** A config problem: an error rejects the whole config, a warning does not, an info is a note. Positions are 1-based. */
export interface ConfigDiagnostic extends Diagnostic {
  readonly severity: 'error' | 'warning' | 'info';
  readonly file: string;
}

/** True when any diagnostic is an error. */
export function hasErrors(diagnostics: readonly ConfigDiagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}
