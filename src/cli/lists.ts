/**
 * Lists of names and numbers for one-line summaries: a model with 10,000 classes or
 * experts gets a line that a person can read, not 69 KB. (--json keeps every item.)
 */
import { cutValue } from '../errors.js';

/** Most items a summary line lists before it abbreviates the rest. */
export const MAX_LISTED = 20;

/**
 * `items` comma-separated for a summary line: all of them where there are at most `max`
 * (and they fit in about `maxChars`), else as many as fit followed by `… (N in all)`.
 * Each item is cut like an error message's value (a 1 MB column name is not printed whole).
 */
export function listItems(items: readonly string[], max = MAX_LISTED, maxChars = 400): string {
  const parts: string[] = [];
  let used = 0;
  for (const item of items) {
    const s = cutValue(item);
    if (parts.length >= max || (parts.length > 0 && used + s.length + 2 > maxChars)) {
      return `${parts.join(', ')}, … (${items.length.toLocaleString('en-US')} in all)`;
    }
    parts.push(s);
    used += s.length + 2;
  }
  return parts.join(', ');
}

/**
 * Column names as the command line takes them back (`--features`): comma-separated, a
 * name with a comma, quote or edge space in CSV quotes; past `max` names, `… (N in all)`.
 */
export function columnList(names: readonly string[], max = MAX_LISTED): string {
  const quoted = names.slice(0, max).map((n) => {
    const c = cutValue(n);
    return /[",\r\n]/.test(c) || c !== c.trim() ? `"${c.replace(/"/g, '""')}"` : c;
  });
  return names.length > max ? `${quoted.join(',')},… (${names.length.toLocaleString('en-US')} in all)` : quoted.join(',');
}
