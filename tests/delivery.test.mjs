// Delivery that loses nothing TikTok could have taken: TikTok played as it really behaves (a
// whole batch refused for one bad event, 20001 partial success, token trouble, outages), the
// Worker restarted mid-run, webhooks redelivered out of order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  startServer, startWorker, shopBindings, waitFor, adminJson, countOf, tiktokAnswer, deliverWebhook,
  loadFixture, big, ADMIN_TOKEN,
} from "./support/harness.mjs";

const TTP = "01JY68AFXQXP2232M0V748XS0P_.tt.1";
const POISON = "vc:poison";
const json = { "content-type": "application/json" };

/**
 * TikTok as it behaves: it keeps the first server copy of each event_id and drops later ones
 * (answering 0), refuses a whole batch with 40002 for one invalid event, or answers 20001 and
 * keeps the others. `trouble(n, ids)` may answer request n otherwise (outages, token).
 */
async function playTikTok(trouble = () => null) {
  const kept = new Map(); // event_id → copies TikTok accepted (the first kept, later dropped)
  let n = 0;
  const server = await startServer((req, res) => {
    n += 1;
    const ids = JSON.parse(req.body).data.map((e) => e.event_id);
    const special = trouble(n, ids);
    if (special === "hang") return; // no answer: the Worker's timeout fires
    if (special) return res.writeHead(special.status ?? 200, json).end(special.body ?? tiktokAnswer(special.code, special.message));
    const keep = ids.filter((id) => id !== POISON);
    if (keep.length < ids.length) {
      if (n % 2 === 0) return res.writeHead(200, json).end(tiktokAnswer(40002, `Invalid value for event_id ${POISON}`));
      keep.forEach((id) => kept.set(id, (kept.get(id) ?? 0) + 1));
      return res.writeHead(200, json).end(tiktokAnswer(20001, "Partial success: 1 event failed"));
    }
    keep.forEach((id) => kept.set(id, (kept.get(id) ?? 0) + 1));
    res.writeHead(200, json).end(tiktokAnswer(0));
  });
  return { ...server, kept };
}

const bindings = (tiktok, extra = {}) => ({
  ...shopBindings("http://127.0.0.1:9", tiktok.url),
  // Only the chaos test's TikTok hangs; elsewhere a slow (loaded) machine must not time out.
  TIKTOK_TIMEOUT_MS: "5000",
  ...extra,
});

async function viewContent(worker, id) {
  const res = await worker.fetch("/tt/collect", {
    method: "POST",
    headers: { "content-type": "application/json", cookie: `_ttp=${TTP}`, origin: worker.url },
    body: JSON.stringify({ event: "ViewContent", event_id: id }),
  });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()).queued;
}

/** The queue is empty: nothing queued, waiting or retrying on any shard. */
const drained = (worker) => waitFor("the queue to drain", async () => (await adminJson(worker)).queue.depth === 0, 60_000);

test("chaos: outages, timeouts, throttling, a revoked token, a poisoned event and partial success, a restart and webhooks 3× out of order: every accepted event reaches TikTok once, the poisoned one fails with TikTok's message", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tt-chaos-"));
  let revokedUntil = 0;
  const cycle = [{ status: 500, body: "<html>bad gateway</html>" }, "hang", { code: 40100, message: "Too many requests. Please retry in some time." }, null, null, { code: 50002, message: "SYS_TIMEOUT" }, null];
  const tiktok = await playTikTok((n) => {
    if (n === 4) revokedUntil = Date.now() + 1500;
    if (Date.now() < revokedUntil) return { code: 40105, message: "Access token is invalid or has expired" };
    return cycle[n % cycle.length];
  });
  const orders = ["5900000000000000501", "5900000000000000502", "5900000000000000503"];
  const accepted = new Set(orders);
  const chaosBindings = bindings(tiktok, { TIKTOK_TIMEOUT_MS: "300" });
  let worker = await startWorker({ persistDir: dir, bindings: chaosBindings });
  try {
    const views = [...Array.from({ length: 40 }, (_, i) => `vc:chaos-${i}`), POISON];
    const deliveries = orders.flatMap((id) => ["orders/create", "orders/paid", "orders/updated"].map((topic) => [topic, id]));
    for (let round = 0; round < 3; round++) {
      // Every webhook three times, each round in another order; browser events in between.
      const order = round % 2 ? [...deliveries].reverse() : deliveries.slice(round).concat(deliveries.slice(0, round));
      for (const [topic, id] of order) {
        const res = await deliverWebhook(worker, topic, { ...loadFixture("order_create.json"), id: big(id) }, { webhookId: `wh-${topic}-${id}-${round}` });
        assert.equal(res.status, 200);
      }
      for (const id of views.splice(0, 14)) if (await viewContent(worker, id)) accepted.add(id);
      if (round === 1) {
        // The Worker restarts mid-run: everything accepted is on disk.
        await worker.dispose();
        worker = await startWorker({ persistDir: dir, bindings: chaosBindings });
      }
    }
    assert.ok(accepted.has(POISON));
    await drained(worker);
    const admin = await adminJson(worker);
    accepted.delete(POISON);
    assert.deepEqual([...tiktok.kept.keys()].sort(), [...accepted].sort(), "every accepted event except the poisoned one");
    assert.ok(!tiktok.kept.has(POISON));
    assert.equal(countOf(admin, "ViewContent", "failed"), 1);
    const failure = admin.queue.last_failures.find((f) => f.event_id === POISON);
    assert.match(failure.error, /TikTok code (40002|20001): /, "TikTok's message");
    assert.equal(admin.queue.paused, undefined, "the token works again: not paused");
    for (const state of ["queued", "waiting", "retrying"]) {
      assert.equal(admin.queue.counts.filter((c) => c.state === state).length, 0, `nothing left ${state}`);
    }
  } finally {
    await worker.dispose();
    await tiktok.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a token refused (40105) for a minute pauses sending, health says why and what to do, and every event from that minute arrives once it works again", async () => {
  const MINUTE = 60_000;
  let revokedUntil = null;
  const refusedSizes = [];
  const tiktok = await playTikTok((n, ids) => {
    revokedUntil ??= Date.now() + MINUTE;
    if (Date.now() >= revokedUntil) return null;
    refusedSizes.push(ids.length);
    return { code: 40105, message: "Access token is invalid or has expired" };
  });
  const worker = await startWorker({ bindings: bindings(tiktok, { RETRY_BASE_MS: "1000" }) });
  try {
    // Shoppers keep browsing through the minute: an event every 5 s.
    const ids = Array.from({ length: 12 }, (_, i) => `vc:revoked-${i}`);
    assert.equal(await viewContent(worker, ids[0]), true);
    const health = await waitFor("health to report the pause", async () => {
      const res = await worker.fetch("/tt/health");
      const body = await res.json();
      return body.status === "paused" && { res, body };
    });
    assert.equal(health.res.status, 503);
    assert.match(health.body.queue_paused.reason, /40105.*wrangler secret put TIKTOK_ACCESS_TOKEN/);
    for (const id of ids.slice(1)) {
      await new Promise((resolve) => setTimeout(resolve, 5000));
      assert.equal(await viewContent(worker, id), true);
    }
    assert.ok(Date.now() < revokedUntil, "all collected while the token was refused");
    const paused = await adminJson(worker);
    assert.equal(countOf(paused, "ViewContent", "failed"), 0, "nothing fails for a configuration problem");
    assert.ok(paused.queue.depth >= ids.length - 1, "the events wait");
    assert.equal(tiktok.kept.size, 0);

    // The merchant set a new token: the next checks succeed and the minute's events go out.
    await waitFor("every event of the minute at TikTok", () => tiktok.kept.size === ids.length, 2 * MINUTE);
    await drained(worker);
    assert.deepEqual([...tiktok.kept.keys()].sort(), [...ids].sort());
    assert.ok([...tiktok.kept.values()].every((copies) => copies === 1), "each sent once");
    assert.ok(refusedSizes.length > ids.length, "the paused shards kept checking");
    assert.ok(refusedSizes.every((size) => size === 1), "one event at a time (each arrived alone, and checks send one)");
    const res = await worker.fetch("/tt/health");
    assert.equal(res.status, 200);
    assert.equal((await res.json()).queue_paused, undefined);
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("the operator re-sends failed events by filter with an authorised POST; links, GETs and URL tokens cannot", async () => {
  let refuse = true;
  const tiktok = await playTikTok(() => (refuse ? { code: 40002, message: "Invalid value for content_type" } : null));
  const worker = await startWorker({ bindings: bindings(tiktok) });
  try {
    assert.equal(await viewContent(worker, "vc:refused-1"), true);
    await waitFor("the refusal", async () => countOf(await adminJson(worker), "ViewContent", "failed") === 1);
    refuse = false; // the cause was fixed on TikTok's side

    const resend = (init) => worker.fetch("/tt/admin/resend", { method: "POST", ...init });
    assert.equal((await worker.fetch("/tt/admin/resend")).status, 405, "not by a link");
    assert.equal((await resend({ body: "{}" })).status, 401);
    assert.equal((await worker.fetch(`/tt/admin/resend?token=${ADMIN_TOKEN}`, { method: "POST", body: "{}" })).status, 401, "not with the token in the URL");
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
    const bad = await resend({ headers: auth, body: JSON.stringify({ state: "sent" }) });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /cannot be re-sent/);
    const none = await resend({ headers: auth, body: JSON.stringify({ error: "40105" }) });
    assert.deepEqual(await none.json(), { requeued: 0 });
    const res = await resend({ headers: auth, body: JSON.stringify({ state: "failed", event: "ViewContent", error: "40002", from_ms: Date.now() - 60_000 }) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { requeued: 1 });
    await waitFor("the re-sent event at TikTok", () => tiktok.kept.has("vc:refused-1"));
    const admin = await adminJson(worker);
    assert.equal(countOf(admin, "ViewContent", "sent"), 1);
    assert.equal(countOf(admin, "ViewContent", "failed"), 0);
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("a shard full of unsent events refuses new ones (the caller gets a 5xx, Shopify redelivers) and loses none it accepted", async () => {
  let down = true;
  const tiktok = await playTikTok(() => (down ? { status: 503, body: "down" } : null));
  const worker = await startWorker({ bindings: bindings(tiktok, { QUEUE_SHARD_MAX_ROWS: "2", RETRY_BASE_MS: "200" }) });
  try {
    const accepted = [];
    let refused = 0;
    for (let i = 0; i < 40 && refused === 0; i++) {
      const res = await worker.fetch("/tt/collect", {
        method: "POST",
        headers: { "content-type": "application/json", cookie: `_ttp=${TTP}`, origin: worker.url },
        body: JSON.stringify({ event: "ViewContent", event_id: `vc:full-${i}` }),
      });
      if (res.status === 202) accepted.push(`vc:full-${i}`);
      else {
        assert.ok(res.status >= 500, `refused with ${res.status}`);
        refused += 1;
      }
    }
    assert.equal(refused, 1, "one shard filled up");
    down = false;
    await drained(worker);
    assert.deepEqual([...tiktok.kept.keys()].sort(), accepted.sort());
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});
