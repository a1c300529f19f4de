import assert from "node:assert/strict";
import { test } from "node:test";
import { runBench } from "../../../bench/suite.ts";
import { WORKLOADS } from "../../../bench/workloads/index.ts";
// The test PostgreSQL; the bench creates and drops its own uniquely named databases there.
import { TEST_PG_URL } from "@tidings/testkit/db";

// The benchmark is not a test (its figures mean nothing on a shared CI box); this only proves
// that every workload and every peer still runs end to end, so the suite cannot rot.
test("every benchmark workload and its peers run at a tiny size", { timeout: 240_000 }, async () => {
  const lines: string[] = [];
  // Five runs side by side (each workload makes its own databases and processes; the smoke run
  // mostly waits for processes to start): the brokers, the queues' own workloads, multi-node
  // (six service processes one phase after another), partitions (two services one after the
  // other), the rest.
  const groups = [["brokers"], ["publish-single", "publish-batch", "deliver", "latency"], ["multi-node"], ["partitions"]];
  const rest = WORKLOADS.map((w) => w.name).filter((name) => !groups.flat().includes(name));
  const reports = await Promise.all(
    [...groups, rest].map((workloads) => runBench({ workloads, smoke: true, pgUrl: TEST_PG_URL, out: null, log: (line) => lines.push(line) })),
  );
  const report = { workloads: reports.flatMap((r) => r.workloads) };
  const output = () => lines.join("\n");

  assert.deepEqual(report.workloads.map((w) => w.name).sort(), WORKLOADS.map((w) => w.name).sort());
  for (const w of report.workloads) {
    assert.notEqual(w.status, "failed", `${w.name} failed: ${w.reason}\n${output()}`);
    if (w.status === "not-available") continue;
    assert.ok(w.systems.length > 0, `${w.name} measured nothing\n${output()}`);
    for (const s of w.systems) {
      assert.ok(Number.isFinite(s.figure) && s.figure >= 0, `${w.name}/${s.system}: figure ${s.figure}`);
      assert.ok(s.messages > 0, `${w.name}/${s.system}: no messages`);
    }
    assert.ok(w.targets.length > 0, `${w.name} checks no target`);
  }
  const systems = (name: string) => report.workloads.find((w) => w.name === name)!.systems.map((s) => s.role);
  // Each workload that names peers ran them, and the limits ran pgbench.
  assert.deepEqual(systems("publish-single"), ["tidings", "peer", "peer", "limit"]);
  // publish-batch: the full answer and return=minimal, then the peers and the limit.
  assert.deepEqual(systems("publish-batch"), ["tidings", "tidings", "peer", "peer", "limit"]);
  // Deliver: each peer with jobs that POST as a delivery does, and with no-op jobs.
  assert.deepEqual(systems("deliver"), ["tidings", "peer", "peer", "peer", "peer"]);
  const deliver = report.workloads.find((w) => w.name === "deliver")!;
  assert.equal(new Set(deliver.systems.map((s) => s.system)).size, 5, "every deliver system has its own name");
  assert.equal(new Set(deliver.ratios.map((r) => r.label)).size, 4, `every deliver ratio has its own label: ${deliver.ratios.map((r) => r.label)}`);
  // Latency: Tidings and the peers measured from the acknowledgement and end to end; the limit,
  // pgbench's durable commits at the same rate, end to end only (it has no acknowledgement).
  assert.deepEqual(systems("latency"), ["tidings", "peer", "peer", "limit"]);
  for (const s of report.workloads.find((w) => w.name === "latency")!.systems) {
    const measures = [["send → handler", s.endToEnd] as const, ...(s.role === "limit" ? [] : [["ack → handler", s.latency] as const])];
    for (const [measure, summary] of measures) {
      assert.ok(summary && summary.count > 0, `latency/${s.system}: no ${measure} measure`);
      for (const v of [summary.p50, summary.p99]) assert.ok(Number.isFinite(v) && v >= 0, `latency/${s.system}: ${measure} ${v}`);
    }
  }
  assert.deepEqual(systems("backlog"), ["tidings", "tidings"]);
  assert.deepEqual(systems("partitions"), ["tidings", "tidings"]);
  for (const name of ["transactional", "outbox-relay"]) assert.deepEqual(systems(name), ["tidings"]);
  // Reconcile: a consumer's run, then a producer's.
  assert.deepEqual(
    report.workloads.find((w) => w.name === "reconcile")!.systems.map((s) => s.system),
    ["tidings", "tidings producer"],
  );
  // Multi-node: 1, 2 and 3 service processes, each node's share read from its own /metrics.
  const multi = report.workloads.find((w) => w.name === "multi-node")!;
  assert.deepEqual(
    multi.systems.map((s) => s.processes.filter((p) => p.name.startsWith("service")).length),
    [1, 2, 3],
  );
  // At this size the first node's claim may take the whole backlog: the shares are not judged here.
  assert.equal(systems("inbox").length, 3);
  assert.ok(
    report.workloads.find((w) => w.name === "inbox")!.targets.every((t) => t.met),
    "the inbox applied each message once",
  );
  // The service ran as its own process: its memory and CPU were read from /proc.
  const service = report.workloads.find((w) => w.name === "publish-single")!.systems[0]!.processes.find((p) => p.name === "service");
  assert.ok(service && service.peakRssMb > 0, `no service process figures\n${output()}`);
});
