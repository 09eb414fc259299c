import { err, ok, type Result } from '../lib/index.js';

// Units of Go's time.ParseDuration, which Istio uses for every duration field, in milliseconds.
const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go/Istio duration (`24h`, `90s`, `500ms`, `1h30m`, `0`) into whole milliseconds;
 * days are not a Go unit, so `7d` is rejected with a hint.
 */
export function parseDuration(text: string): Result<number> {
  let s = text.trim();
  if (s === '') return err('empty duration');
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return ok(0);
  let total = 0;
  let rest = s;
  while (rest.length > 0) {
    const m = PART.exec(rest);
    if (!m) {
      if (/^\d+(\.\d*)?d$/.test(rest)) return err(`invalid duration '${text}': days are not a unit, write hours (e.g. 168h)`);
      return err(`invalid duration '${text}': expected numbers with units ns, us, ms, s, m, h (e.g. 24h, 1h30m, 500ms)`);
    }
    total += Number(m[1]) * (UNIT_MS[m[2]] as number);
    rest = rest.slice(m[0].length);
  }
  if (!Number.isFinite(total)) return err(`invalid duration '${text}': too large`);
  return ok(sign * Math.round(total));
}

/** Formats milliseconds as a Go duration (`1h30m`, `500ms`), the inverse of parseDuration for whole milliseconds. */
export function formatDuration(ms: number): string {
  if (!Number.isInteger(ms)) throw new Error(`formatDuration: not whole milliseconds: ${ms}`);
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  let out = '';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return sign + out;
}
