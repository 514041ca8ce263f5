// The durable send queue: TikTok played by a local server that fails in every way it can.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startServer, startWorker, waitFor, adminJson, countOf, tiktokAnswer, ADMIN_TOKEN } from "./support/harness.mjs";

const TTP = "01JY68AFXQXP2232M0V748XS0P_.tt.1";
const liveBindings = (tiktok, extra = {}) => ({
  TIKTOK_PIXEL_ID: "C9Q2MJ3C77U4P674RPG0",
  TIKTOK_ACCESS_TOKEN: "tok-test-123",
  TIKTOK_API_BASE: tiktok.url,
  RETRY_BASE_MS: "50",
  // Long enough that a loaded machine never times out an answer TikTok gave; the timeout test
  // sets its own.
  TIKTOK_TIMEOUT_MS: "5000",
  ADMIN_TOKEN,
  ...extra,
});

function collect(worker, event, eventId, headers = {}) {
  return worker.fetch("/tt/collect", {
    method: "POST",
    headers: { "content-type": "application/json", cookie: `_ttp=${TTP}; ttclid=E.C.P.click1`, "user-agent": "TestBrowser/1.0", ...headers },
    body: JSON.stringify({
      event,
      event_id: eventId,
      page: { url: "https://shop.example/products/mug" },
      properties: { currency: "USD", contents: [{ content_id: "42001234567890123", content_name: "Mug", quantity: 2, price: "18.50" }] },
    }),
  });
}

test("500, timeout and 40100 are retried with the same event_id until TikTok accepts; the caller is answered first", async () => {
  let releaseFirst;
  const firstHeld = new Promise((r) => (releaseFirst = r));
  const tiktok = await startServer(async (req, res) => {
    const attempt = tiktok.requests.length;
    if (attempt === 1) { await firstHeld; return res.writeHead(500).end("<html>oops</html>"); }
    if (attempt === 2) return; // never answers: the Worker's timeout must fire
    if (attempt === 3) return res.writeHead(200, { "content-type": "application/json" }).end(tiktokAnswer(40100, "Too many requests. Please retry in some time."));
    res.writeHead(200, { "content-type": "application/json" }).end(tiktokAnswer(0));
  });
  const worker = await startWorker({ bindings: liveBindings(tiktok, { TIKTOK_TEST_EVENT_CODE: "TEST42", TIKTOK_TIMEOUT_MS: "300" }) });
  try {
    const res = await collect(worker, "AddToCart", "atc-retry-1");
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { event_id: "atc-retry-1", queued: true });
    // The caller has its answer while TikTok's first answer is still being held back.
    releaseFirst();

    const admin = await waitFor("the event to be sent", async () => {
      const a = await adminJson(worker);
      return countOf(a, "AddToCart", "sent") === 1 && a;
    });
    assert.equal(tiktok.requests.length, 4, "three failures, then exactly one success");
    assert.equal(admin.queue.depth, 0, "nothing left to send");
    for (const req of tiktok.requests) {
      assert.equal(req.url, "/open_api/v1.3/event/track/");
      assert.equal(req.headers["access-token"], "tok-test-123");
      const body = JSON.parse(req.body);
      assert.equal(body.event_source, "web");
      assert.equal(body.event_source_id, "C9Q2MJ3C77U4P674RPG0");
      assert.equal(body.test_event_code, "TEST42");
      assert.equal(body.data.length, 1);
      const [event] = body.data;
      assert.equal(event.event_id, "atc-retry-1");
      assert.equal(event.event, "AddToCart");
      assert.equal(event.user.ttp, TTP);
      assert.equal(event.user.ttclid, "E.C.P.click1");
      assert.equal(event.user.user_agent, "TestBrowser/1.0");
      assert.equal(typeof event.event_time, "number");
      assert.ok(Number.isInteger(event.event_time));
      assert.equal(event.properties.value, 37);
      assert.equal(event.properties.market_handle, "unassigned_market");
      assert.equal(event.properties.market_id, 0);
    }
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("40002 is not retried and is kept as a failure with TikTok's message", async () => {
  const message = "Invalid value for event_id: not a valid string.";
  const tiktok = await startServer((req, res) => res.writeHead(200).end(tiktokAnswer(40002, message)));
  const worker = await startWorker({ bindings: liveBindings(tiktok) });
  try {
    assert.equal((await collect(worker, "ViewContent", "vc-bad-1")).status, 202);
    const admin = await waitFor("the failure to be recorded", async () => {
      const a = await adminJson(worker);
      return countOf(a, "ViewContent", "failed") === 1 && a;
    });
    assert.equal(tiktok.requests.length, 1);
    assert.equal(admin.queue.depth, 0);
    assert.equal(admin.queue.last_failures[0].event_id, "vc-bad-1");
    assert.match(admin.queue.last_failures[0].error, /40002: Invalid value for event_id/);
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("the same event_id is queued once however often it is collected", async () => {
  const tiktok = await startServer((req, res) => res.writeHead(200).end(tiktokAnswer(0)));
  const worker = await startWorker({ bindings: liveBindings(tiktok) });
  try {
    assert.deepEqual(await (await collect(worker, "AddToCart", "atc-dup")).json(), { event_id: "atc-dup", queued: true });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await (await collect(worker, "AddToCart", "atc-dup")).json(), { event_id: "atc-dup", queued: false });
    }
    // Same id, different event name: TikTok dedups on the pair, so this one is new.
    assert.deepEqual(await (await collect(worker, "ViewContent", "atc-dup")).json(), { event_id: "atc-dup", queued: true });
    await waitFor("both events to be sent", async () => {
      const a = await adminJson(worker);
      return countOf(a, "AddToCart", "sent") + countOf(a, "ViewContent", "sent") === 2;
    });
    const sent = tiktok.requests.flatMap((r) => JSON.parse(r.body).data.map((e) => `${e.event}:${e.event_id}`));
    assert.deepEqual(sent.sort(), ["AddToCart:atc-dup", "ViewContent:atc-dup"]);
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("dry run: without an access token events are recorded, never sent", async () => {
  const tiktok = await startServer((req, res) => res.writeHead(200).end(tiktokAnswer(0)));
  const { TIKTOK_ACCESS_TOKEN, ...bindings } = liveBindings(tiktok);
  const worker = await startWorker({ bindings });
  try {
    assert.equal((await collect(worker, "AddToCart", "atc-dry")).status, 202);
    const admin = await waitFor("the dry-run record", async () => {
      const a = await adminJson(worker);
      return countOf(a, "AddToCart", "dry_run") === 1 && a;
    });
    assert.equal(admin.mode, "dry_run");
    assert.equal(admin.queue.match_keys.ttp, 1);
    assert.equal(tiktok.requests.length, 0);
  } finally {
    await worker.dispose();
    await tiktok.close();
  }
});

test("a Worker restart between attempts still delivers the event", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tiktok-edge-restart-"));
  let failing = true;
  const tiktok = await startServer((req, res) => res.writeHead(failing ? 503 : 200).end(failing ? "down" : tiktokAnswer(0)));
  try {
    const first = await startWorker({ persistDir: dir, bindings: liveBindings(tiktok, { RETRY_BASE_MS: "1500" }) });
    try {
      assert.equal((await collect(first, "ViewContent", "vc-restart")).status, 202);
      await waitFor("the first attempt to fail", async () => countOf(await adminJson(first), "ViewContent", "retrying") === 1);
    } finally {
      await first.dispose();
    }
    assert.equal(tiktok.requests.length, 1);
    failing = false;
    const second = await startWorker({ persistDir: dir, bindings: liveBindings(tiktok, { RETRY_BASE_MS: "1500" }) });
    try {
      await waitFor("delivery after the restart", async () => countOf(await adminJson(second), "ViewContent", "sent") === 1);
      assert.equal(tiktok.requests.length, 2);
      assert.equal(JSON.parse(tiktok.requests[1].body).data[0].event_id, "vc-restart");
    } finally {
      await second.dispose();
    }
  } finally {
    await tiktok.close();
    await rm(dir, { recursive: true, force: true });
  }
});
