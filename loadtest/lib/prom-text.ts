// Values read from the Prometheus text exposition (what GET /metrics answers): enough for the
// benchmark to read a few unlabelled counters of the processes it runs.

/** The value of each named series without labels; a name that is not in the text is left out. */
export function unlabelledValues(text: string, names: readonly string[]): Record<string, number> {
  const wanted = new Set(names);
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    // name value [timestamp]; a labelled series has a '{' right after its name and is not matched.
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)/.exec(line);
    if (!m || !wanted.has(m[1] as string)) continue;
    const v = Number(m[2] === '+Inf' ? Infinity : m[2] === '-Inf' ? -Infinity : m[2]);
    if (!Number.isNaN(v)) out[m[1] as string] = v;
  }
  return out;
}
