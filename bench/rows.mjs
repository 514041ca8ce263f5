// SQLite rows a queue shard reads and writes per enqueue and per flushed event, with 0, 10,000
// and 100,000 finished rows retained in the shard (issue 13: the cost must not grow with the
// history). The rows are what Cloudflare bills for SQLite-backed Durable Objects. The shard
// reports them itself: the enqueue answer carries `rows_read`/`rows_written`, and each flush
// logs `queue_flushed` with its rows (src/queue_do.rs).
//
// History is seeded by a dry-run Worker (no access token: the shard records each event as
// `dry_run` at once, no flush), enqueueing straight into shard `queue-0` through Miniflare's
// Durable Object namespace in calls of SEED_BATCH. The measurement runs a live Worker on the
// same persisted state, sending to a local TikTok that accepts everything: MEASURED
// single-event enqueues (as a webhook or a page's collect makes them), then their flushes.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startServer, startWorker, waitFor, tiktokAnswer } from "../tests/support/harness.mjs";

const SHARD = "queue-0";
const SEED_BATCH = 1000;
const MEASURED = 50; // single-event enqueues per level, then flushed
const HOLD = { purchase_event: "Purchase", wait_ms: 0, send_unconfirmed_purchases: false };

let seq = 0;
const event = () => ({
  event: "ViewContent",
  event_time: Math.floor(Date.now() / 1000),
  event_id: `rows-bench-${++seq}`,
  user: { ttp: "01JY68AFXQXP2232M0V748XS0P_.tt.1" },
  properties: { market_handle: "us", market_id: 1 },
});

const PIXEL_ID = "C9Q2MJ3C77U4P674RPG0";

/** Shard `queue-0` of a Worker started with `bindings` on `persistDir`. */
async function shard(persistDir, bindings) {
  const worker = await startWorker({ persistDir, bindings: { TIKTOK_PIXEL_ID: PIXEL_ID, ...bindings } });
  const ns = await worker.mf.getDurableObjectNamespace("EVENT_QUEUE");
  const stub = ns.get(ns.idFromName(SHARD));
  // A typed call (core's queue::ShardCall, as JSON) and its answer (queue::ShardAnswer).
  const ask = async (call) => {
    const res = await stub.fetch("https://queue/", { method: "POST", body: JSON.stringify(call) });
    if (res.status !== 200) throw new Error(`${JSON.stringify(call).slice(0, 40)} answered ${res.status}: ${await res.text()}`);
    return res.json();
  };
  const enqueue = async (events) => (await ask({ enqueue: { source: "webhook", hold: HOLD, events } })).enqueued;
  const depth = async () => (await ask("health")).health.depth;
  return { worker, enqueue, depth };
}

export async function rowsBench(levels = [0, 10_000, 100_000]) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tt-rows-"));
  const tiktok = await startServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(tiktokAnswer(0)));
  const live = { TIKTOK_ACCESS_TOKEN: "tok-bench", TIKTOK_API_BASE: tiktok.url };
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const results = [];
  let retained = 0;
  try {
    for (const level of levels) {
      const seedStart = performance.now();
      const seeder = await shard(dir, {});
      try {
        while (retained < level) {
          const n = Math.min(SEED_BATCH, level - retained);
          const summary = await seeder.enqueue(Array.from({ length: n }, event));
          if (summary.accepted !== n) throw new Error(`seeding: ${summary.accepted} of ${n} accepted`);
          retained += n;
        }
        await waitFor("seeded dry-run events recorded", async () => (await seeder.depth()) === 0, 300_000);
      } finally {
        await seeder.worker.dispose();
      }
      const seedSeconds = (performance.now() - seedStart) / 1000;
      const q = await shard(dir, live);
      try {
        const perCall = [];
        for (let i = 0; i < MEASURED; i++) perCall.push(await q.enqueue([event()]));
        await waitFor(`${MEASURED} events sent`, async () => (await q.depth()) === 0, 60_000);
        retained += MEASURED;
        const flushes = q.worker.logs.map((l) => /"event":"queue_flushed","rows_read":(\d+),"rows_written":(\d+)/.exec(l)).filter(Boolean);
        if (!flushes.length) throw new Error("no queue_flushed log line: did the shard flush?");
        results.push({
          retained: level,
          seedSeconds,
          enqueue: { read: sum(perCall.map((s) => s.rows_read)) / MEASURED, written: sum(perCall.map((s) => s.rows_written)) / MEASURED },
          flush: { read: sum(flushes.map((m) => Number(m[1]))) / MEASURED, written: sum(flushes.map((m) => Number(m[2]))) / MEASURED, flushes: flushes.length },
        });
      } finally {
        await q.worker.dispose();
      }
    }
    return results;
  } finally {
    await tiktok.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// `node bench/rows.mjs`: this part alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await rowsBench()) {
    console.log(`${r.retained} retained (seeded in ${r.seedSeconds.toFixed(1)} s): per enqueue ${r.enqueue.read} read / ${r.enqueue.written} written; ` +
      `per flushed event ${r.flush.read.toFixed(2)} read / ${r.flush.written.toFixed(2)} written (${r.flush.flushes} flushes)`);
  }
}
