/** Text for people: tables and label/value lines, lined up for a terminal. */

/** Text longer than `width` is cut, with an ellipsis. */
export const cut = (text: string, width: number): string => (text.length > width ? `${text.slice(0, width - 1)}…` : text);

/** Rows of cells as columns padded to their widest cell (the first row: the headings). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n");
}

/** Label and value lines, the values lined up. */
export const fields = (pairs: Array<[string, string]>): string => pairs.map(([label, value]) => `  ${label.padEnd(22)}${value}`).join("\n");

/** A nullable value, or a dash. */
export const orNone = (value: string | number | null | undefined): string => (value === null || value === undefined ? "-" : String(value));

/** An ISO time without its date when it is today's: what a line of `tail` needs. */
export const clock = (iso: string): string => iso.slice(11, 23);

/** A JSON value on one line, cut to `width`. */
export const oneLine = (value: unknown, width: number): string => cut(JSON.stringify(value) ?? "", width);
