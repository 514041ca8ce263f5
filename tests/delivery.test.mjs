// Delivery that loses nothing TikTok could have taken: TikTok played as it really behaves (a
// whole batch refused for one bad event, 20001 partial success, token trouble, outages), the
// Worker restarted mid-run, webhooks redelivered out of order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  startServer, startWorker, startShop, shopBindings, waitFor, adminJson, countOf, tiktokAnswer,
  deliverWebhook, loadFixture, big, ADMIN_TOKEN, postCollect, queueShard, eventsAt,
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
  const res = await postCollect(worker, { event: "ViewContent", event_id: id }, { cookie: `_ttp=${TTP}`, origin: worker.url });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()).queued;
}

/** The queue is empty: nothing queued, waiting or retrying on any shard. */
const drained = (worker) => waitFor("the queue to drain", async () => (await adminJson(worker)).queue.depth === 0, 60_000);

test("chaos: outages, timeouts, throttling, a revoked token, a poisoned event and partial success, a restart and webhooks 3× out of order: every accepted event reaches TikTok once, the poisoned one fails with TikTok's message", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tt-chaos-"));
  let revokedUntil = 0;
  let throttled = 0;
  const cycle = [{ status: 500, body: "<html>bad gateway</html>" }, "hang", { code: 40100, message: "Too many requests. Please retry in some time." }, null, null, { code: 50002, message: "SYS_TIMEOUT" }, null];
  const tiktok = await playTikTok((n) => {
    if (n === 4) revokedUntil = Date.now() + 1500;
    if (Date.now() < revokedUntil) return { code: 40105, message: "Access token is invalid or has expired" };
    const special = cycle[n % cycle.length];
    // One throttle (the per-second limit: retried the next second). Repeated throttles within
    // a minute pause a shard five minutes, as TikTok asks (core's shard tests play that).
    if (special?.code === 40100 && throttled++ > 0) return null;
    return special;
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
    // The plain poll read the pause from KV; asking the shards says the same, with the depth.
    const asked = await worker.fetch("/tt/health?queue=1");
    const full = await asked.json();
    assert.equal(asked.status, 503);
    assert.equal(full.queue_paused.reason, health.body.queue_paused.reason);
    assert.ok(full.queue_depth >= 1, "the event waits");
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
    // Resuming removed the KV copy too.
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

/** `count` keys `make(i)` of `event` whose queue shard is `shard`. */
function keysIn(shard, event, make, count) {
  const keys = [];
  for (let i = 0; keys.length < count; i++) if (queueShard(event, make(i)) === shard) keys.push(make(i));
  return keys;
}

/** A signed order nobody's session joins (its ttp can only come from elsewhere). */
const signedOrder = (id) => ({ ...loadFixture("order_create.json"), id: big(id), note_attributes: [], cart_token: null, checkout_token: null });

/** Anyone's post of a browser event through Shopify's sandbox door (Origin null, no cookies). */
const forged = (worker, body) => postCollect(worker, { user: { ttp: "01JYATTACKERATTACKERATTACK_.tt.1" }, ...body }, { "content-type": "text/plain", origin: "null", "cf-connecting-ip": "198.51.100.66" });

test("a shard full of unsent events refuses a browser copy at the door (503, Retry-After) and a signed webhook only when its half is full too (500, Shopify redelivers); none it accepted is lost", async () => {
  let down = true;
  const tiktok = await playTikTok(() => (down ? { status: 503, body: "down" } : null));
  const worker = await startWorker({ bindings: bindings(tiktok, { QUEUE_SHARD_MAX_ROWS: "2", RETRY_BASE_MS: "200" }) });
  try {
    const [first, second] = keysIn(3, "ViewContent", (i) => `vc:full-${i}`, 2);
    const [orderA, orderB] = keysIn(3, "Purchase", (i) => String(5900000000000000700n + BigInt(i)), 2);
    assert.equal(await viewContent(worker, first), true);
    // TikTok is down: the browser copy waits to be retried and holds the browser half.
    const refused = await postCollect(worker, { event: "ViewContent", event_id: second }, { cookie: `_ttp=${TTP}`, origin: worker.url });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "60");
    assert.equal((await refused.json()).error, "queue_full");
    // The signed half is free.
    const a = await deliverWebhook(worker, "orders/create", signedOrder(orderA));
    assert.equal(a.status, 200);
    assert.equal(a.body.queued, 1);
    // Now every row waits to be sent: a signed webhook too is refused, so Shopify redelivers.
    const b = await deliverWebhook(worker, "orders/create", signedOrder(orderB), { webhookId: "wh-full-b" });
    assert.equal(b.status, 500);
    const admin = await adminJson(worker);
    assert.deepEqual(admin.queue.no_room, { browser: 1, webhook: 1 });
    down = false;
    await drained(worker);
    // Shopify's redelivery, once there is room.
    const again = await deliverWebhook(worker, "orders/create", signedOrder(orderB), { webhookId: "wh-full-b" });
    assert.equal(again.status, 200);
    assert.equal(again.body.queued, 1);
    await drained(worker);
    assert.deepEqual([...tiktok.kept.keys()].sort(), [first, orderA, orderB].sort(), "every accepted event, once");
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("a shard flooded with forged browser copies still takes every signed webhook (they reach TikTok); collect answers 503 for the excess and the admin page counts it", async () => {
  const SHARD = 5;
  const env = await startShop({ bindings: { QUEUE_SHARD_MAX_ROWS: "40" } });
  try {
    // Forged checkout steps for made-up tokens wait (WEBHOOK_WAIT_MS, 90 s) for a webhook that
    // never comes: rows no cleanup may delete.
    const tokens = keysIn(SHARD, "InitiateCheckout", (i) => `ic:${String(i).padStart(32, "f")}`, 41).map((k) => k.slice(3));
    const statuses = [];
    for (const token of tokens.slice(0, 40)) {
      const res = await forged(env.worker, { event: "InitiateCheckout", event_id: `ic:${token}`, checkout_token: token });
      statuses.push(res.status);
      if (res.status === 503) {
        assert.equal(res.headers.get("retry-after"), "60");
        assert.match((await res.json()).message, /retry later/);
      } else {
        assert.equal((await res.json()).queued, true);
      }
    }
    assert.deepEqual(statuses, [...Array(20).fill(202), ...Array(20).fill(503)], "half the shard, then the door closes");

    // Every signed order of that shard is taken and sent.
    const orders = keysIn(SHARD, "Purchase", (i) => String(5900000000000000800n + BigInt(i)), 20);
    for (const id of orders) {
      const res = await deliverWebhook(env.worker, "orders/create", signedOrder(id));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.queued, 1);
    }
    await waitFor("every signed order at TikTok", () => orders.every((id) => env.sentEvents().some((e) => e.event_id === id)));
    assert.ok(env.sentEvents().every((e) => e.event === "Purchase"), "no forged checkout step was sent");

    // A forged copy merged with its signed checkout stops counting as browser-only: one more
    // browser copy fits, and the next is refused again.
    const merged = await deliverWebhook(env.worker, "checkouts/create", { ...loadFixture("checkout_update.json"), token: tokens[0], note_attributes: [], cart_token: null });
    assert.equal(merged.status, 200);
    const fits = await forged(env.worker, { event: "InitiateCheckout", event_id: `ic:${tokens[40]}`, checkout_token: tokens[40] });
    assert.equal(fits.status, 202);
    const next = keysIn(SHARD, "InitiateCheckout", (i) => `ic:${String(i).padStart(32, "e")}`, 1)[0];
    assert.equal((await forged(env.worker, { event: "InitiateCheckout", event_id: next, checkout_token: next.slice(3) })).status, 503);

    const admin = await adminJson(env.worker);
    assert.deepEqual(admin.queue.no_room, { browser: 21, webhook: 0 });
    const page = await (await env.worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.match(page, /<b>21<\/b> browser events refused \(503\) in the last 24 h/);
    assert.doesNotMatch(page, /signed webhooks refused/);
  } finally {
    await env.close();
  }
});

test("re-sending unconfirmed purchases previews first (count, totals, the largest) and sends nothing; only the preview's confirmation sends, exactly what it showed, within max_value", async () => {
  const env = await startShop();
  const resend = async (body) => {
    const res = await env.worker.fetch("/tt/admin/resend", { method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const purchase = (id, value) => forged(env.worker, { event: "Purchase", event_id: id, properties: { value, currency: "USD", order_id: id } });
  const unconfirmed = async () => countOf(await adminJson(env.worker), "Purchase", "unconfirmed");
  try {
    const [small, medium, fake, late] = ["5900000000000000601", "5900000000000000602", "5900000000000000603", "5900000000000000604"];
    for (const [id, value] of [[small, "12.00"], [medium, "30.00"], [fake, "999999.00"]]) assert.equal((await purchase(id, value)).status, 202);
    assert.equal(await unconfirmed(), 3);

    // One click sends nothing: it answers what would be sent.
    const look = await resend({ state: "unconfirmed" });
    assert.equal(look.status, 200);
    assert.equal(look.body.requeued, 0);
    assert.equal(look.body.preview.count, 3);
    assert.deepEqual(look.body.preview.totals, { USD: "1000041.00" });
    assert.deepEqual(look.body.preview.largest.map((c) => [c.event_id, c.value]), [[fake, "999999.00"], [medium, "30.00"], [small, "12.00"]]);
    assert.equal(await unconfirmed(), 3, "still unconfirmed");

    // The bound leaves the forgery out.
    const bounded = await resend({ state: "unconfirmed", max_value: "1000" });
    assert.equal(bounded.status, 200);
    assert.deepEqual([bounded.body.preview.count, bounded.body.preview.left_out], [2, 1]);
    assert.deepEqual(bounded.body.preview.totals, { USD: "42.00" });
    const confirmWith = bounded.body.confirm_with;
    assert.equal(confirmWith.max_value, "1000");
    assert.equal(typeof confirmWith.to_ms, "number");

    // A confirmation counts only for what it was given for.
    for (const wrong of [
      { state: "unconfirmed", confirm: "yes" },
      { state: "unconfirmed", confirm: look.body.confirm_with.confirm }, // the unbounded preview's
      { ...confirmWith, max_value: "1000000" },
    ]) {
      const res = await resend(wrong);
      assert.equal(res.status, 409, JSON.stringify(wrong));
      assert.equal(res.body.error, "preview_changed");
      assert.equal(res.body.requeued, 0);
    }
    assert.equal((await resend({ state: "unconfirmed", confirm: true })).status, 400, "the code, not a yes");
    assert.equal((await resend({ state: "unconfirmed", max_valu: "1000" })).status, 400, "a misspelt bound");
    assert.equal(await unconfirmed(), 3);
    assert.equal(env.tiktok.requests.length, 0, "TikTok received nothing");

    // A purchase arriving after the preview is not part of its confirmation.
    assert.equal((await purchase(late, "20.00")).status, 202);
    const done = await resend(confirmWith);
    assert.deepEqual(done, { status: 200, body: { requeued: 2 } });
    await waitFor("the two confirmed purchases at TikTok", () => env.sentEvents().length === 2);
    assert.deepEqual(env.sentEvents().map((e) => e.event_id).sort(), [small, medium]);
    assert.equal(await unconfirmed(), 2, "the forgery and the late one stay");

    // What was previewed changed before the confirmation (the late one's order came): 409.
    const again = await resend({ state: "unconfirmed", max_value: "1000" });
    assert.equal(again.body.preview.count, 1);
    assert.equal((await deliverWebhook(env.worker, "orders/create", signedOrder(late))).body.queued, 1);
    const stale = await resend(again.body.confirm_with);
    assert.equal(stale.status, 409);
    assert.equal(stale.body.preview.count, 0);
    await waitFor("the signed order at TikTok", () => env.sentEvents().some((e) => e.event_id === late));
    assert.ok(!env.sentEvents().some((e) => e.event_id === fake), "the forgery never left");
  } finally {
    await env.close();
  }
});
