import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux we run on). */
const TICKS = 100;

export interface ProcessUsage {
  /** "service", "runner", "postgres". */
  name: string;
  /** Peak resident memory during the phase, in MB (postgres: private memory of all its processes + shared memory once). */
  peakRssMb: number;
  /** CPU seconds (user + system) used during the phase. */
  cpuSeconds: number;
  /** CPU seconds per 1,000 messages of the phase. */
  cpuPer1000: number;
}

/** What one watched process (or process tree) reports at a sampling instant. */
interface Watched {
  name: string;
  cpuTicks(): number;
  rssKb(): number;
}

function statFields(pid: number | "self"): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: field 3 (state) is index 0.
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

function statusKb(pid: number | "self", key: string): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${key}:`));
    return line ? Number(line.split(/\s+/)[1]) : 0;
  } catch {
    return 0;
  }
}

/** One process: its own user + system time (fields 14, 15) and VmRSS. */
export function watchProcess(name: string, pid: number | "self"): Watched {
  return {
    name,
    cpuTicks() {
      const f = statFields(pid);
      return f ? Number(f[11]) + Number(f[12]) : 0;
    },
    rssKb: () => statusKb(pid, "VmRSS"),
  };
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid) out.push(Number(entry));
  }
  return out;
}

/**
 * The postmaster and its backends. CPU: the postmaster's own and reaped children's time
 * (cutime/cstime hold backends that exited) plus the live backends' time, so a delta over a
 * phase counts backends that came and went. Memory: each process's private memory (RssAnon)
 * plus the shared memory (shared buffers) once: the largest RssShmem of any of them. Read from
 * /proc/<pid>/status, which is cheap; smaps_rollup (PSS) walks 2 GB of shared mappings per
 * backend and cost the runner a third of its CPU. The list of backends (a scan of /proc) is
 * refreshed every 2 s: pooled connections rarely come and go.
 */
export function watchPostgres(postmasterPid: number): Watched {
  let children: number[] = [];
  let listedAt = 0;
  const list = (fresh: boolean) => {
    if (fresh || Date.now() - listedAt > 2_000) {
      children = childrenOf(postmasterPid);
      listedAt = Date.now();
    }
    return children;
  };
  return {
    name: "postgres",
    cpuTicks() {
      const f = statFields(postmasterPid);
      if (!f) return 0;
      let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      for (const child of list(true)) {
        const c = statFields(child);
        if (c) ticks += Number(c[11]) + Number(c[12]);
      }
      return ticks;
    },
    rssKb() {
      let anon = 0;
      let shmem = 0;
      for (const pid of [postmasterPid, ...list(false)]) {
        anon += statusKb(pid, "RssAnon");
        shmem = Math.max(shmem, statusKb(pid, "RssShmem"));
      }
      return anon + shmem;
    },
  };
}

/** Samples memory every `intervalMs` between start and stop; CPU is the difference of the two ends. */
export class UsageSampler {
  private readonly startTicks: number[];
  private readonly peakKb: number[];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly watched: readonly Watched[],
    intervalMs = 500,
  ) {
    this.startTicks = watched.map((w) => w.cpuTicks());
    this.peakKb = watched.map((w) => w.rssKb());
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    this.watched.forEach((w, i) => {
      this.peakKb[i] = Math.max(this.peakKb[i]!, w.rssKb());
    });
  }

  stop(messages: number): ProcessUsage[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    return this.watched.map((w, i) => {
      const cpuSeconds = (w.cpuTicks() - this.startTicks[i]!) / TICKS;
      return {
        name: w.name,
        peakRssMb: Math.round(this.peakKb[i]! / 1024),
        cpuSeconds: round(cpuSeconds, 2),
        cpuPer1000: messages > 0 ? round((cpuSeconds * 1000) / messages, 4) : 0,
      };
    });
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
