import { randomBytes } from "node:crypto";

/**
 * A JSON value kept as its exact text (a payload with numbers a double cannot hold, such as
 * 12345678901234567891 or 1e400). `stringifyExact` writes the text as it is; plain
 * JSON.stringify, which cannot, writes the parsed value (rounded) instead.
 */
export class RawJson {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    if (collecting === null) return JSON.parse(this.text) as unknown;
    collecting.push(this.text);
    return `${MARK}${collecting.length - 1}`;
  }
}

/** A per-process random mark: a payload string cannot guess it to have its text replaced. */
const MARK = `\u0001raw-${randomBytes(9).toString("base64url")}:`;
/** JSON.stringify escapes U+0001, so the mark appears in its output as: */
const MARK_IN_JSON = JSON.stringify(MARK).slice(1, -1);
let collecting: string[] | null = null;

/**
 * JSON.stringify, with each RawJson written as its exact text. Costs one JSON.stringify when
 * the value holds none.
 */
export function stringifyExact(value: unknown): string {
  const outer = collecting;
  const texts: string[] = [];
  collecting = texts;
  let json: string;
  try {
    json = JSON.stringify(value);
  } finally {
    collecting = outer;
  }
  if (texts.length === 0) return json;
  let out = "";
  let from = 0;
  for (let i = 0; i < texts.length; i++) {
    const mark = `"${MARK_IN_JSON}${i}"`;
    const at = json.indexOf(mark, from);
    out += json.slice(from, at) + texts[i];
    from = at + mark.length;
  }
  return out + json.slice(from);
}

/**
 * A number text JSON.parse would not give back as sent: 16 digits or more, or an exponent.
 * For text already known to be JSON (a stored payload read back).
 */
const INEXACT = /(?:\d\.?){16}|\d[eE]/;

/** Whether JSON text may hold a number JSON.parse would change (false positives: hex text such as "4e5"). */
export const holdsInexactNumber = (text: string): boolean => INEXACT.test(text);

/**
 * Whether valid JSON text holds a number (outside strings) of 16 digits or more, or with an
 * exponent: the exact answer to what `holdsInexactNumber` guesses, for the rare text it flags.
 */
function numberOutsideStringsInexact(text: string): boolean {
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      digits = 0;
      for (i++; text.charCodeAt(i) !== 34; i++) if (text.charCodeAt(i) === 92 /* \ */) i++;
    } else if (c >= 48 && c <= 57) {
      if (++digits >= 16) return true;
    } else if ((c === 101 || c === 69) && digits > 0) {
      return true; // an exponent (letters outside strings are otherwise only true/false/null)
    } else if (c !== 46 /* . */) {
      digits = 0;
    }
  }
  return false;
}

/**
 * A stored JSON text as a value: parsed, or kept as its exact text where parsing would change a
 * number. Text whose only long digit runs are inside strings (a header value such as a 19-digit
 * request id) parses as usual.
 */
export function parseExact(text: string): unknown {
  return INEXACT.test(text) && numberOutsideStringsInexact(text) ? new RawJson(text) : JSON.parse(text);
}
