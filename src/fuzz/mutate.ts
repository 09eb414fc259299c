// Mutators in the manner of AFL's havoc stage: a few stacked edits of a seed input (flips,
// deletions, duplications, splices of dictionary tokens, truncation), so most inputs stay close
// to valid and reach the parser's deeper checks instead of failing at the first byte.
import type { Random } from './random.js';

/** Applies 1–8 random edits to `text`, using `dictionary` tokens for insertions and replacements. */
export function mutateText(text: string, rng: Random, dictionary: readonly string[]): string {
  let s = text;
  const edits = 1 + rng.int(8);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(s.length + 1);
    switch (rng.int(9)) {
      case 0: // replace one character with any code unit (control characters and lone surrogates included)
        s = s.slice(0, at) + String.fromCharCode(rng.chance(0.8) ? rng.int(128) : rng.int(0x10000)) + s.slice(at + 1);
        break;
      case 1: // delete a span
        s = s.slice(0, at) + s.slice(at + 1 + rng.int(32));
        break;
      case 2: // insert a dictionary token
        s = s.slice(0, at) + rng.pick(dictionary) + s.slice(at);
        break;
      case 3: {
        // duplicate a span somewhere else
        const from = rng.int(s.length + 1);
        const span = s.slice(from, from + 1 + rng.int(200));
        s = s.slice(0, at) + span + s.slice(at);
        break;
      }
      case 4: {
        // operate on lines: delete, duplicate, swap, indent or dedent one
        const lines = s.split('\n');
        const i = rng.int(lines.length);
        const j = rng.int(lines.length);
        const op = rng.int(5);
        if (op === 0) lines.splice(i, 1);
        else if (op === 1) lines.splice(i, 0, lines[i]!);
        else if (op === 2) [lines[i], lines[j]] = [lines[j]!, lines[i]!];
        else if (op === 3) lines[i] = '  ' + lines[i];
        else lines[i] = lines[i]!.replace(/^ {1,2}/, '');
        s = lines.join('\n');
        break;
      }
      case 5: {
        // replace the next word with a dictionary token (a field name, a kind, a value)
        const word = /[A-Za-z0-9.-]+/g;
        word.lastIndex = at;
        const m = word.exec(s);
        if (m) s = s.slice(0, m.index) + rng.pick(dictionary) + s.slice(m.index + m[0].length);
        break;
      }
      case 6: // truncate
        s = s.slice(0, at);
        break;
      case 7: // repeat a token many times (deep nesting, long lines, many aliases)
        s = s.slice(0, at) + rng.pick(dictionary).repeat(1 + rng.int(200)) + s.slice(at);
        break;
      default: // flip the case of a character
        s =
          s.slice(0, at) + (s[at] === s[at]?.toUpperCase() ? (s[at]?.toLowerCase() ?? '') : (s[at]?.toUpperCase() ?? '')) + s.slice(at + 1);
    }
  }
  return s;
}

/** Applies 1–8 random edits to `bytes`: bit flips, interesting values, deletions, duplications, dictionary splices, truncation. */
export function mutateBytes(bytes: Uint8Array, rng: Random, dictionary: readonly Uint8Array[]): Uint8Array {
  let b = Buffer.from(bytes);
  const interesting = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff];
  const edits = 1 + rng.int(8);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(Math.max(b.length, 1));
    switch (rng.int(7)) {
      case 0:
        if (b.length > 0) b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1: // ASN.1 length and tag bytes where parsers go wrong
        if (b.length > 0) b[at] = rng.pick(interesting);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(16))]);
        break;
      case 3: {
        const from = rng.int(Math.max(b.length, 1));
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + 1 + rng.int(64)), b.subarray(at)]);
        break;
      }
      case 4:
        if (dictionary.length > 0) b = Buffer.concat([b.subarray(0, at), rng.pick(dictionary), b.subarray(at)]);
        break;
      case 5:
        b = b.subarray(0, at);
        break;
      default: // append trailing bytes
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + rng.int(8) }, () => rng.int(256)))]);
    }
  }
  return new Uint8Array(b);
}
