// /tt/health and the router: presence of settings without values, invalid settings reported,
// our prefix never leaking to the shop.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, startWorker } from "./support/harness.mjs";

const SECRETS = {
  TIKTOK_ACCESS_TOKEN: "tok_LIVE_9f8e7d6c5b4a",
  SHOPIFY_WEBHOOK_SECRET: "whsec_CURRENT_1234567890",
  SHOPIFY_WEBHOOK_SECRET_PREVIOUS: "whsec_PREVIOUS_0987654321",
  ADMIN_TOKEN: "admin_TOKEN_abcdefghijklmnop",
};

let origin;
before(async () => {
  origin = await startServer((req, res) => res.end("from origin"));
});
after(() => origin?.close());

async function withWorker(bindings, fn) {
  const worker = await startWorker({ bindings: { ORIGIN_URL: origin.url, ...bindings } });
  try {
    await fn(worker);
  } finally {
    await worker.dispose();
  }
}

test("health reports version, mode and which settings are present, never their values", async () => {
  await withWorker({ ...SECRETS, TIKTOK_PIXEL_ID: "C9Q2MJ3C77U4P674RPG0", SHOPIFY_SHOP_DOMAIN: "demo.myshopify.com" }, async (worker) => {
    const res = await worker.fetch("/tt/health");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const raw = await res.text();
    for (const value of Object.values(SECRETS)) assert.ok(!raw.includes(value), "secret value leaked");
    assert.ok(![...res.headers.values()].some((v) => Object.values(SECRETS).some((s) => v.includes(s))));
    const body = JSON.parse(raw);
    assert.equal(body.status, "ok");
    assert.equal(body.mode, "live");
    assert.match(body.version, /^\d+\.\d+\.\d+$/);
    assert.equal(body.tiktok_configured, true);
    assert.equal(body.webhook_secret_configured, true);
    assert.equal(body.shop_domain_configured, true);
    assert.equal(body.config.TIKTOK_ACCESS_TOKEN, true);
    assert.equal(body.config.ADMIN_TOKEN, true);
    assert.equal(body.config.TIKTOK_TEST_EVENT_CODE, false);
    assert.deepEqual(body.problems, []);
  });
});

test("without an access token the Worker is in dry run", async () => {
  await withWorker({}, async (worker) => {
    const body = await (await worker.fetch("/tt/health")).json();
    assert.equal(body.mode, "dry_run");
    assert.equal(body.tiktok_configured, false);
  });
});

test("invalid settings: health says which and why, tracking answers 503, the shop still works", async () => {
  await withWorker({ ADMIN_TOKEN: "too-short-value", CONSENT_DEFAULT: "perhaps" }, async (worker) => {
    const res = await worker.fetch("/tt/health");
    assert.equal(res.status, 503);
    const raw = await res.text();
    assert.ok(!raw.includes("too-short-value"));
    const body = JSON.parse(raw);
    assert.equal(body.status, "misconfigured");
    assert.deepEqual(body.problems.map((p) => p.name), ["ADMIN_TOKEN", "CONSENT_DEFAULT"]);
    assert.match(body.problems[0].message, /at least 16 characters/);

    const collect = await worker.fetch("/tt/collect", { method: "POST", body: "{}" });
    assert.equal(collect.status, 503);
    assert.equal((await collect.json()).error, "config_invalid");

    const page = await worker.fetch("/products/mug");
    assert.equal(page.status, 200);
    assert.equal(await page.text(), "from origin");
  });
});

test("an unusable ORIGIN_URL: the shop's pages answer 502 naming the setting, and nothing is forwarded anywhere", async () => {
  const before = origin.requests.length;
  await withWorker({ ORIGIN_URL: "ftp://shop.example/path" }, async (worker) => {
    const page = await worker.fetch("/products/mug");
    assert.equal(page.status, 502);
    const body = await page.json();
    assert.equal(body.error, "config_invalid");
    assert.match(body.message, /ORIGIN_URL/);
    const health = await (await worker.fetch("/tt/health")).json();
    assert.deepEqual(health.problems.map((p) => p.name), ["ORIGIN_URL"]);
  });
  assert.equal(origin.requests.length, before);
});

test("unknown paths under the prefix are ours: 404/405, never sent to the shop", async () => {
  await withWorker({}, async (worker) => {
    const before = origin.requests.length;
    const missing = await worker.fetch("/tt/nope");
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error, "not_found");
    const wrongMethod = await worker.fetch("/tt/health", { method: "POST", body: "x" });
    assert.equal(wrongMethod.status, 405);
    assert.equal(origin.requests.length, before);
  });
});

test("ROUTE_PREFIX moves every endpoint", async () => {
  await withWorker({ ROUTE_PREFIX: "/edge" }, async (worker) => {
    assert.equal((await worker.fetch("/edge/health")).status, 200);
    const old = await worker.fetch("/tt/health");
    assert.equal(await old.text(), "from origin");
  });
});
