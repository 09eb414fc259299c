// File system errors in words a person reads: Node's bare codes (ENOENT) say little to someone
// who mistyped a path. Messages built with this name the path themselves.

const WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory, expected a file',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'path too long',
  EMFILE: 'too many open files',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
};

/** What a file system error means, in words, with its code: `no such file or directory (ENOENT)`. */
export function fsErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && WORDS[code] !== undefined) return `${WORDS[code]} (${code})`;
  return code ?? (e instanceof Error ? e.message : String(e));
}
