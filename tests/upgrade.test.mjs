// Upgrading a shop whose send queue holds events: the queue shards' SQLite as the release before
// several pixels left it (schema 4: one row per event name and event_id, no pixel), migrated when
// the new Worker starts. Every queued event survives and reaches TikTok exactly once: to the one
// pixel under unchanged settings, to the first pixel of TIKTOK_PIXELS once that is set. TikTok is
// played; the Worker is the build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";
import {
  startServer, startWorker, shopBindings, waitFor, adminJson, countOf, tiktokAnswer, postCollect,
  deliverWebhook, loadFixture, big, queueShard, PIXEL_ID,
} from "./support/harness.mjs";

const TTP = "01JY68AFXQXP2232M0V748XS0P_.tt.1";
const ORDER = "5900000000000000777";
/** The events queued before the upgrade: browser copies and a signed order's Purchase. */
const QUEUED = [["ViewContent", "vc:upgrade-1"], ["ViewContent", "vc:upgrade-2"], ["AddToCart", "atc:upgrade-3"], ["Purchase", ORDER]];

/**
 * Runs `statements` (SQL) one after another in queue shard `shard`'s SQLite under `persistDir`,
 * with the Worker stopped, and returns each one's rows. A stand-in Durable Object of the same
 * class name on the same persisted storage opens the very database the Worker's EventQueue uses.
 */
async function onShard(persistDir, shard, statements) {
  const mf = new Miniflare({
    modules: true,
    script: `export class EventQueue {
      constructor(ctx) { this.storage = ctx.storage; }
      async fetch(req) { return Response.json((await req.json()).map((s) => this.storage.sql.exec(s).toArray())); }
      // The shard's alarm, should it fire now, is left for the Worker (a second on).
      async alarm() { await this.storage.setAlarm(Date.now() + 1000); }
    }
    export default {
      fetch: (req, env) => env.EVENT_QUEUE.get(env.EVENT_QUEUE.idFromName(new URL(req.url).searchParams.get("shard"))).fetch(req),
    };`,
    compatibilityDate: "2026-07-01",
    durableObjects: { EVENT_QUEUE: { className: "EventQueue", useSQLite: true } },
    durableObjectsPersist: path.join(persistDir, "do"),
  });
  try {
    const res = await mf.dispatchFetch(`http://stand-in/?shard=${shard}`, { method: "POST", body: JSON.stringify(statements) });
    if (res.status !== 200) throw new Error(`the stand-in answered ${res.status}: ${await res.text()}`);
    return await res.json();
  } finally {
    await mf.dispose();
  }
}

/**
 * Turns shard `shard`'s tables back into what the release before pixels left (schema 4), from
 * the schema SQLite itself records: the events table without its `pixel` column, keyed by event
 * name and event_id, with the same indexes and triggers (bar the index that came with pixels).
 */
async function asBeforePixels(persistDir, shard) {
  const [objects, columns, pixels] = await onShard(persistDir, shard, [
    "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL",
    "SELECT name FROM pragma_table_info('events') WHERE name != 'pixel'",
    "SELECT DISTINCT pixel FROM events",
  ]);
  assert.deepEqual(pixels, [{ pixel: "" }], "queued under the single-pixel settings");
  const table = objects.find((o) => o.type === "table").sql
    .replace(/^CREATE TABLE "?events"?/, "CREATE TABLE events_before")
    .replace(/\s*pixel TEXT NOT NULL DEFAULT '',/, "")
    .replace("PRIMARY KEY (pixel, ", "PRIMARY KEY (");
  assert.doesNotMatch(table, /pixel/);
  const names = columns.map((c) => c.name).join(", ");
  await onShard(persistDir, shard, [
    table,
    `INSERT INTO events_before (${names}) SELECT ${names} FROM events`,
    "DROP TABLE events",
    "ALTER TABLE events_before RENAME TO events",
    ...objects.filter((o) => o.type !== "table" && o.name !== "events_event").map((o) => o.sql),
    "UPDATE meta SET n = 4 WHERE key = 'schema'",
  ]);
}

/** The shards holding QUEUED, by name. */
const SHARDS = [...new Set(QUEUED.map(([event, id]) => `queue-${queueShard(event, id)}`))];

/** (pixel, token, event, event_id) of every event TikTok took. */
const received = (tiktok) => tiktok.requests.filter((r) => r.answered).flatMap((r) => {
  const body = JSON.parse(r.body);
  return body.data.map((e) => [body.event_source_id, r.headers["access-token"], e.event, e.event_id]);
});

/**
 * TikTok down, then up (`tiktok.up = true`); the Worker queues QUEUED under the single-pixel
 * settings while TikTok is down, each tried once and kept `retrying`, and stops.
 */
async function queuedWhileDown(persistDir) {
  const tiktok = await startServer((req, res) => {
    if (!tiktok.up) return res.writeHead(503).end("down");
    req.answered = true;
    res.writeHead(200, { "content-type": "application/json" }).end(tiktokAnswer(0));
  });
  tiktok.up = false;
  const single = { ...shopBindings("http://127.0.0.1:9", tiktok.url), RETRY_BASE_MS: "1500", TIKTOK_TIMEOUT_MS: "5000" };
  const worker = await startWorker({ persistDir, bindings: single });
  try {
    for (const [event, id] of QUEUED.filter(([event]) => event !== "Purchase")) {
      const res = await postCollect(worker, { event, event_id: id, page: { url: "https://shop.example/products/mug" } }, { cookie: `_ttp=${TTP}` });
      assert.deepEqual(await res.json(), { event_id: id, queued: true });
    }
    const order = await deliverWebhook(worker, "orders/create", { ...loadFixture("order_create.json"), id: big(ORDER) });
    assert.equal(order.status, 200);
    await waitFor("every event tried once and kept", async () => {
      const admin = await adminJson(worker);
      return QUEUED.every(([event]) => countOf(admin, event, "retrying") >= 1) && admin.queue.depth === QUEUED.length;
    });
  } finally {
    await worker.dispose();
  }
  return { tiktok, single };
}

/** Each event of QUEUED exactly once, sorted, as [pixel, token, event, event_id]. */
const onceEach = (pixel, token) => QUEUED.map(([event, id]) => [pixel, token, event, id]).sort();

/** The worker's queue drained: TikTok has all it will get. */
const drained = (worker) => waitFor("the queue to drain", async () => (await adminJson(worker)).queue.depth === 0, 30_000);

test("a restart under unchanged settings keeps every queued event (the schema migrates once) and sends each once", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tt-upgrade-same-"));
  const { tiktok, single } = await queuedWhileDown(dir);
  try {
    tiktok.up = true;
    const worker = await startWorker({ persistDir: dir, bindings: single });
    try {
      await drained(worker);
      await waitFor("every queued event at TikTok", () => received(tiktok).length >= QUEUED.length);
      assert.deepEqual(received(tiktok).sort(), onceEach(PIXEL_ID, single.TIKTOK_ACCESS_TOKEN));
    } finally {
      await worker.dispose();
    }
    for (const shard of SHARDS) {
      const [[schema], [rows], [counted]] = await onShard(dir, shard, [
        "SELECT n FROM meta WHERE key = 'schema'",
        "SELECT COUNT(*) AS n FROM events",
        "SELECT n FROM meta WHERE key = 'rows'",
      ]);
      assert.equal(schema.n, 5, "every migration ran, once");
      assert.equal(counted.n, rows.n, "the row count kept by triggers");
    }
  } finally {
    await tiktok.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a queue written before pixels migrates with every event kept, sent once to the first pixel of TIKTOK_PIXELS and to no other", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tt-upgrade-pixels-"));
  const { tiktok, single } = await queuedWhileDown(dir);
  try {
    for (const shard of SHARDS) await asBeforePixels(dir, shard);
    tiktok.up = true;
    const pixels = {
      ...single,
      TIKTOK_PIXEL_ID: "", // replaced by TIKTOK_PIXELS, whose first pixel is the same one
      TIKTOK_PIXELS: JSON.stringify([{ id: PIXEL_ID }, { id: "CSECONDPIXEL", token: "TIKTOK_TOKEN_2" }]),
      TIKTOK_TOKEN_2: "tok-second",
    };
    const worker = await startWorker({ persistDir: dir, bindings: pixels });
    try {
      await drained(worker);
      await waitFor("every queued event at TikTok", () => received(tiktok).length >= QUEUED.length);
      assert.deepEqual(received(tiktok).sort(), onceEach(PIXEL_ID, single.TIKTOK_ACCESS_TOKEN));
      // A later copy of a queued event merges with its row: nothing new goes to the first pixel.
      const res = await postCollect(worker, { event: "ViewContent", event_id: "vc:upgrade-1" }, { cookie: `_ttp=${TTP}` });
      assert.equal(res.status, 202);
      await drained(worker);
      const toFirst = received(tiktok).filter(([pixel, , , id]) => pixel === PIXEL_ID && id === "vc:upgrade-1");
      assert.equal(toFirst.length, 1);
    } finally {
      await worker.dispose();
    }
    for (const shard of SHARDS) {
      const [[schema], [rows], [counted], [browser], [unsent], orphans] = await onShard(dir, shard, [
        "SELECT n FROM meta WHERE key = 'schema'",
        "SELECT COUNT(*) AS n FROM events",
        "SELECT n FROM meta WHERE key = 'rows'",
        "SELECT COUNT(*) AS n FROM events WHERE source = 'browser' AND state IN ('queued', 'waiting', 'retrying')",
        "SELECT n FROM meta WHERE key = 'browser_unsent'",
        "SELECT event_id FROM events WHERE pixel = ''",
      ]);
      assert.equal(schema.n, 5);
      assert.equal(counted.n, rows.n, "the row count recounted and kept by the triggers again");
      assert.equal(unsent.n, browser.n);
      assert.deepEqual(orphans, [], "every row moved to the first pixel");
    }
  } finally {
    await tiktok.close();
    await rm(dir, { recursive: true, force: true });
  }
});
