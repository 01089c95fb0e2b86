/**
 * How deeply a parsed JSON value nests, measured without recursion (a value nested
 * 20,000 arrays deep parses, but any recursive walk of it — a checksum's canonical form,
 * JSON.stringify in a message — overflows the stack). Model files nest a few levels; the
 * readers refuse anything deeper than {@link MAX_JSON_DEPTH} before walking it.
 */

/** Deepest nesting of arrays and objects a model file's JSON may have (its own fields nest 4 levels). */
export const MAX_JSON_DEPTH = 32;

/** A key as a path shows it (a crafted key may be megabytes long). */
function short(k: string): string {
  return k.length > 40 ? `${k.slice(0, 37)}...` : k;
}

/**
 * The path (`a.b[3]`) of the first value nested deeper than `max` levels of arrays and
 * objects, or undefined where none is. Iterative: any depth is measured without recursion.
 */
export function tooDeep(value: unknown, max = MAX_JSON_DEPTH): string | undefined {
  const stack: { v: unknown; depth: number; path: string }[] = [{ v: value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return path || '(top)';
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const c: unknown = v[i];
        if (c !== null && typeof c === 'object') stack.push({ v: c, depth: depth + 1, path: `${path}[${i}]` });
      }
    } else {
      for (const [k, c] of Object.entries(v as Record<string, unknown>)) {
        if (c !== null && typeof c === 'object') stack.push({ v: c, depth: depth + 1, path: path ? `${path}.${short(k)}` : short(k) });
      }
    }
  }
  return undefined;
}

/** The message for a value nested too deeply at `path` (cut to stay short). */
export function tooDeepMessage(path: string, max = MAX_JSON_DEPTH): string {
  const shown = path.length > 60 ? `${path.slice(0, 57).replace(/\[\d*$/, '')}...` : path;
  return `${shown}: nested more than ${max} levels deep; no model file field is (not a model file, or crafted)`;
}
