/**
 * Placeholder rewriting between `?` (MySQL, Knex) and `$n` (PostgreSQL). Quoted strings and
 * identifiers are skipped, so a `?` or `$1` inside '...' or "..." is left alone.
 */

const TOKENS = /'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(\d+)|\?/g;

/** `select ? , ?` → `select $1 , $2`. */
export function questionToDollar(sql: string): string {
  let n = 0;
  return sql.replace(TOKENS, (token) => (token === "?" ? `$${++n}` : token));
}

/**
 * `... $2 ... $1 ... $2` with params [a, b] → `... ? ... ? ... ?` with [b, a, b]. A `?` that is
 * not a placeholder (the jsonb operator) is escaped as `\?`, which Knex reads as a literal `?`.
 */
export function dollarToQuestion(sql: string, params: readonly unknown[]): { sql: string; params: unknown[] } {
  const ordered: unknown[] = [];
  const text = sql.replace(TOKENS, (token, index: string | undefined) => {
    if (token === "?") return "\\?";
    if (index === undefined) return token;
    const i = Number(index) - 1;
    if (i < 0 || i >= params.length) throw new RangeError(`placeholder $${index} has no parameter (got ${params.length})`);
    ordered.push(params[i]);
    return "?";
  });
  return { sql: text, params: ordered };
}

/** Splits SQL with native placeholders into text chunks and the parameter each gap takes. */
export function splitPlaceholders(sql: string, params: readonly unknown[], style: "dollar" | "question"): { chunks: string[]; values: unknown[] } {
  const chunks: string[] = [];
  const values: unknown[] = [];
  let last = 0;
  let n = 0;
  for (const match of sql.matchAll(TOKENS)) {
    const token = match[0];
    let value: unknown;
    if (style === "question" && token === "?") value = params[n++];
    else if (style === "dollar" && match[1] !== undefined) value = params[Number(match[1]) - 1];
    else continue;
    chunks.push(sql.slice(last, match.index));
    values.push(value);
    last = match.index! + token.length;
  }
  chunks.push(sql.slice(last));
  return { chunks, values };
}
