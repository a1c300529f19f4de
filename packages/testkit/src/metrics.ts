/**
 * One sample of a service's /metrics: its value, or undefined when the series is absent. Each
 * process exposes only its own counters, so reading every node's is how a test learns what each
 * node of a cluster did.
 */
export async function readMetric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] === name && want.every((w) => (match[2] ?? "").split(",").includes(w))) return Number(match[3]);
  }
  return undefined;
}
