import type { Diagnostic } from '../lib/index.js';
import { pathInFile, positionOf, type SourceRef } from '../model/index.js';

/** A policy compile problem: `error` means part of a policy was dropped or replaced by a deny; `warning` means it compiled, maybe differently than it reads. */
export interface PolicyDiagnostic extends Diagnostic {
  readonly severity: 'error' | 'warning';
  /** The policy the problem is in, as `<kind> <namespace>/<name>`. */
  readonly object: string;
}

/** Builds a diagnostic that points at the field `path` of an object, using its recorded source positions. */
export function diagnosticAt(
  object: { readonly namespace: string; readonly name: string; readonly origin?: SourceRef },
  kind: string,
  path: string,
  severity: PolicyDiagnostic['severity'],
  message: string,
): PolicyDiagnostic {
  const p = positionOf(object.origin, path);
  return {
    severity,
    object: `${kind} ${object.namespace}/${object.name}`,
    path: pathInFile(object.origin, path),
    message,
    ...(p ? { file: p.file, line: p.line, column: p.column } : {}),
  };
}
