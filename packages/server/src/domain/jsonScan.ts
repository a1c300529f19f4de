/**
 * Cheap looks at a request body's JSON text, to keep the common body on the fast path (one
 * JSON.parse, one JSON.stringify) and send only a suspect one down the slow, exact one.
 */

/** How deep objects and arrays may nest inside a payload. */
export const MAX_PAYLOAD_DEPTH = 64;

/**
 * A `\u0000` escape or a lone surrogate escape (a high one not followed by a low one, or a low
 * one not after a high one): text PostgreSQL refuses. An escaped backslash before `u` matches
 * too; the walk that names the field then finds nothing, which costs time only.
 */
const POISON_ESCAPE = /\\u0000|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F]/;

/**
 * A number JSON.parse cannot give back as sent: 16 digits or more (a double holds 15 exactly),
 * or an exponent (1e400 overflows to Infinity, 1e-400 underflows to 0). Numbers start after
 * `:`, `[` or `,`; a hex string such as "3e4f" does not match, a string like ":1e5" may (the
 * exact path is right for any text, only slower).
 */
const NUMBER_RISK = /[:,[]\s*-?(?:\d\.?){16}|[:,[]\s*-?\d+(?:\.\d+)?[eE]/;

/** Whether the text may hold a NUL or a lone surrogate (then the parsed value is walked). */
export const mayHoldPoison = (text: string): boolean => text.includes("\\u") && POISON_ESCAPE.test(text);

/** Whether the text may hold a number that JSON.parse would round or turn into null. */
export const mayHoldInexactNumber = (text: string): boolean => NUMBER_RISK.test(text);

/** Whether `{` and `[` occur at most `limit` times in all (then nothing nests deeper). */
export function bracketsAtMost(text: string, limit: number): boolean {
  let n = 0;
  for (let i = text.indexOf("{"); i !== -1; i = text.indexOf("{", i + 1)) if (++n > limit) return false;
  for (let i = text.indexOf("["); i !== -1; i = text.indexOf("[", i + 1)) if (++n > limit) return false;
  return true;
}

export interface JsonScan {
  /** The deepest nesting of objects and arrays in the text. */
  maxDepth: number;
  /** Whether a number token has 16 digits or more, or an exponent (outside strings: exact). */
  inexactNumber: boolean;
  /**
   * The exact text of each message's payload: the body's `payload` (key 0) or that of
   * `messages[i]` (key i).
   */
  payloads: Map<number, string>;
}

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const COMMA = 44;
const COLON = 58;
const DIGIT_0 = 48;
const DIGIT_9 = 57;
const LOWER_E = 101;
const UPPER_E = 69;

/**
 * Whether objects and arrays nest at most `limit` deep in valid JSON text, strings skipped:
 * the one look a batch without suspect numbers needs (scanJson also cuts out every payload's
 * text, which such a batch does not need).
 */
export function nestingAtMost(text: string, limit: number): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // The closing quote is the next one after an even run of backslashes.
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        let k = j - 1;
        while (text.charCodeAt(k) === BACKSLASH) k--;
        if (((j - 1 - k) & 1) === 0) break;
      }
      i = j;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return true;
}

/** The index of the quote that closes the string opened at `start` (a loop: most strings are short). */
function stringEnd(text: string, start: number): number {
  for (let j = start + 1; ; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) return j;
    if (c === BACKSLASH) j++;
  }
}

/**
 * One pass over valid JSON text (already parsed once): the deepest nesting, whether a number
 * would not survive JSON.parse, and where each message's payload starts and ends, so that it
 * can be stored and delivered byte for byte as sent. `batch`: the body is
 * `{"messages":[{…,"payload":…},…]}`, else `{…,"payload":…}`. Iterative, so any depth is fine.
 */
export function scanJson(text: string, batch: boolean): JsonScan {
  const payloads = new Map<number, string>();
  const payloadDepth = batch ? 3 : 1;
  let depth = 0;
  let maxDepth = 0;
  let inexactNumber = false;
  // Per level (1-based): an object?; for levels 1-3 the current key and the element index.
  const isObject: boolean[] = [false];
  const keys: Array<string | null> = [null, null, null, null];
  const index: number[] = [0, 0, 0, 0];
  let expectKey = false;
  let start = -1;
  const atPayload = (): boolean =>
    isObject[depth] === true && keys[depth] === "payload" && (!batch || (isObject[1] === true && keys[1] === "messages" && isObject[2] === false));
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    // A value starts here (not a key, a comma, a colon or a closer): is it a payload?
    const shallow = depth === payloadDepth && start === -1;
    if (c === QUOTE) {
      const j = stringEnd(text, i);
      if (expectKey) {
        // Only "payload" and "messages" matter; a key with escapes is decoded to compare.
        if (depth <= 3) {
          const key = text.slice(i + 1, j);
          keys[depth] = key.includes("\\") ? (JSON.parse(`"${key}"`) as string) : key;
        }
        expectKey = false;
      } else if (shallow && atPayload()) {
        payloads.set(batch ? index[2]! : 0, text.slice(i, j + 1));
      }
      i = j + 1;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (shallow && atPayload()) start = i;
      depth++;
      if (depth > maxDepth) maxDepth = depth;
      isObject[depth] = c === OPEN_OBJECT;
      expectKey = c === OPEN_OBJECT;
      if (depth <= 3) {
        keys[depth] = null;
        index[depth] = 0;
      }
      i++;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
      expectKey = false;
      if (start !== -1 && depth === payloadDepth) {
        payloads.set(batch ? index[2]! : 0, text.slice(start, i + 1));
        start = -1;
      }
      i++;
    } else if (c === COMMA) {
      expectKey = isObject[depth] === true;
      if (depth <= 3 && !isObject[depth]) index[depth]!++;
      i++;
    } else if (c === COLON || c === 32 || c === 10 || c === 13 || c === 9) {
      i++;
    } else {
      // A number, true, false or null: up to the next delimiter.
      let digits = 0;
      let j = i;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d >= DIGIT_0 && d <= DIGIT_9) digits++;
        else if ((d === LOWER_E || d === UPPER_E) && digits > 0) digits = 16;
        else if (d === COMMA || d === CLOSE_OBJECT || d === CLOSE_ARRAY || d === 32 || d === 10 || d === 13 || d === 9) break;
        else if (d === QUOTE || d === OPEN_OBJECT || d === OPEN_ARRAY || d === COLON) break; // after a stray byte order mark
      }
      if (digits >= 16) inexactNumber = true;
      if (shallow && atPayload()) payloads.set(batch ? index[2]! : 0, text.slice(i, j));
      i = j;
    }
  }
  return { maxDepth, inexactNumber, payloads };
}
