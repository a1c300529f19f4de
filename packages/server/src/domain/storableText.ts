/**
 * Text that came from outside (a receiver's answer, a broker's error, a check-back answer, an
 * operator's reason) made storable in a PostgreSQL `text` column, which refuses NUL and
 * invalid UTF-8: NUL characters are removed, unpaired UTF-16 surrogates (which have no UTF-8
 * form) become U+FFFD, and the result is cut to at most `maxChars` UTF-16 units without
 * splitting a surrogate pair. One pass, and none at all for the usual clean short text.
 */
export function storableText(text: string, maxChars: number): string {
  // Fast path: short text with no NUL and no surrogate at all is already storable.
  if (text.length <= maxChars && !UNSAFE.test(text)) return text;
  let out = "";
  const end = text.length;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    let piece: string;
    if (c === 0) continue;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < end ? text.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        piece = text.slice(i, i + 2);
        i++;
      } else piece = "\ufffd";
    } else if (c >= 0xdc00 && c <= 0xdfff) piece = "\ufffd";
    else piece = text[i]!;
    if (out.length + piece.length > maxChars) break;
    out += piece;
  }
  return out;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is one of the two things this looks for
const UNSAFE = /[\u0000\ud800-\udfff]/;
