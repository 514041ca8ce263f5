// /tt/health and the router: presence of settings without values, invalid settings reported,
// our prefix never leaking to the shop.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  ADMIN_TOKEN, SHOP_DOMAIN, WEBHOOK_SECRET, adminJson, deliverWebhook, loadFixture, startServer, startWorker, waitFor,
} from "./support/harness.mjs";

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

async function withWorker(bindings, fn, options = {}) {
  const worker = await startWorker({ ...options, bindings: { ORIGIN_URL: origin.url, ...bindings } });
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
    // Each setting's own state: set, not_set (its default applies) or invalid, never a value.
    assert.equal(body.settings.TIKTOK_ACCESS_TOKEN, "set");
    assert.equal(body.settings.ADMIN_TOKEN, "set");
    assert.equal(body.settings.TIKTOK_TEST_EVENT_CODE, "not_set");
    assert.equal(body.settings.INJECT_PIXEL, "not_set", "not set, not 'off'");
    assert.equal(body.config, undefined, "no ambiguous true/false map");
    assert.deepEqual(body.problems, []);
    assert.equal(body.webhooks_refused, null);
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
  await withWorker({ ADMIN_TOKEN: "too-short-value", CONSENT_DEFAULT: "perhaps", SHOPIFY_SHOP_DOMAIN: "demo.myshopify.com" }, async (worker) => {
    const res = await worker.fetch("/tt/health");
    assert.equal(res.status, 503);
    const raw = await res.text();
    assert.ok(!raw.includes("too-short-value"));
    const body = JSON.parse(raw);
    assert.equal(body.status, "misconfigured");
    assert.deepEqual(body.problems.map((p) => p.name), ["ADMIN_TOKEN", "CONSENT_DEFAULT"]);
    assert.match(body.problems[0].message, /at least 16 characters/);
    assert.equal(body.settings.CONSENT_DEFAULT, "invalid");
    assert.equal(body.shop_domain_configured, true, "its own setting is fine, whatever the others");

    const collect = await worker.fetch("/tt/collect", { method: "POST", body: "{}" });
    assert.equal(collect.status, 503);
    assert.equal((await collect.json()).error, "config_invalid");

    const page = await worker.fetch("/products/mug");
    assert.equal(page.status, 200);
    assert.equal(await page.text(), "from origin");
  });
});

test("status codes a monitor reads: 200 ok, 424 degraded (webhooks off), 503 misconfigured", async () => {
  await withWorker({ SHOPIFY_WEBHOOK_SECRET: "whsec-x", SHOPIFY_SHOP_DOMAIN: "demo.myshopify.com" }, async (worker) => {
    assert.equal((await worker.fetch("/tt/health")).status, 200);
    assert.equal((await worker.fetch("/tt/health", { method: "HEAD" })).status, 200);
  });
  await withWorker({ SHOPIFY_WEBHOOK_SECRET: "whsec-x" }, async (worker) => {
    const res = await worker.fetch("/tt/health");
    assert.equal(res.status, 424, "webhooks off is not ok");
    const body = await res.json();
    assert.equal(body.status, "degraded");
    assert.equal(body.shop_domain_configured, false);
    assert.equal(body.settings.SHOPIFY_SHOP_DOMAIN, "not_set");
    assert.equal((await worker.fetch("/tt/health", { method: "HEAD" })).status, 424);
  });
  await withWorker({ ROUTE_PREFIX: "nope" }, async (worker) => {
    assert.equal((await worker.fetch("/tt/health")).status, 503);
  });
});

test("an ORIGIN_URL with a path: the shop's pages still come from the shop (the request's own URL), health says degraded and names it", async () => {
  // On a Cloudflare route a Worker's fetch of its own URL goes to the origin behind the route:
  // played by `routedTo`.
  const before = origin.requests.length;
  await withWorker({ ORIGIN_URL: "https://shop.example/path", TIKTOK_PIXEL_ID: "C9Q2MJ3C77U4P674RPG0" }, async (worker) => {
    const page = await worker.fetch("/products/mug?variant=1");
    assert.equal(page.status, 200);
    assert.equal(await page.text(), "from origin");
    assert.equal(origin.requests.at(-1).url, "/products/mug?variant=1");
    const res = await worker.fetch("/tt/health");
    assert.equal(res.status, 424);
    const health = await res.json();
    assert.equal(health.status, "degraded");
    assert.equal(health.settings.ORIGIN_URL, "invalid");
    assert.deepEqual(health.problems.map((p) => [p.name, p.disables]), [["ORIGIN_URL", "forwarding to ORIGIN_URL"]]);
    assert.match(health.problems[0].message, /request's own URL/);
    // Tracking works on.
    assert.equal((await worker.fetch("/tt/pixel.js")).status, 200);
  }, { routedTo: origin.url });
  // With every other setting broken too (tracking off), the shop's pages still pass.
  await withWorker({ ORIGIN_URL: "ftp://shop.example/path", ROUTE_PREFIX: "nope" }, async (worker) => {
    const page = await worker.fetch("/collections/all");
    assert.equal(page.status, 200);
    assert.equal(await page.text(), "from origin");
  }, { routedTo: origin.url });
  assert.equal(origin.requests.length, before + 2);

  // A local Worker (its own URL is itself, no origin behind it) answers at once, naming the
  // setting, instead of calling itself.
  for (const bindings of [{ ORIGIN_URL: "http://127.0.0.1:1/path" }, { ORIGIN_URL: "http://127.0.0.1:1/path", ROUTE_PREFIX: "nope" }]) {
    await withWorker(bindings, async (worker) => {
      const page = await worker.fetch("/products/mug", { signal: AbortSignal.timeout(10_000) });
      assert.equal(page.status, 502);
      const body = await page.json();
      assert.equal(body.error, "config_invalid");
      assert.match(body.message, /^(invalid configuration: )?ORIGIN_URL: must be only scheme, host and optional port.*a local Worker has no origin behind its own URL/);
    });
  }
  assert.equal(origin.requests.length, before + 2);
});

test("a wrong SHOPIFY_WEBHOOK_SECRET: refusals are counted, health turns degraded (424) with the hint, the admin page shows it on top; an accepted webhook clears it", async () => {
  const persistDir = mkdtempSync(path.join(tmpdir(), "refused-"));
  // The commonest mistake: the app's API key pasted instead of its secret. Shopify signs with
  // the secret (WEBHOOK_SECRET), the Worker checks with the key.
  const shop = { TIKTOK_PIXEL_ID: "C9Q2MJ3C77U4P674RPG0", SHOPIFY_SHOP_DOMAIN: SHOP_DOMAIN, ADMIN_TOKEN };
  const order = loadFixture("order_create.json");
  try {
    await withWorker({ ...shop, SHOPIFY_WEBHOOK_SECRET: "the-apps-api-key-not-its-secret" }, async (worker) => {
      assert.equal((await worker.fetch("/tt/health")).status, 200, "nothing refused yet");
      for (let i = 0; i < 3; i++) assert.equal((await deliverWebhook(worker, "orders/create", order)).status, 401);
      // The first refusal is written at once, the others within the isolate's interval (10 s).
      const health = await waitFor("3 refusals counted", async () => {
        const h = await (await worker.fetch("/tt/health")).json();
        return h.webhooks_refused?.bad_hmac === 3 && h;
      });
      assert.equal(health.status, "degraded");
      assert.equal((await worker.fetch("/tt/health")).status, 424);
      assert.deepEqual(health.problems.map((p) => [p.name, p.disables]), [["SHOPIFY_WEBHOOK_SECRET", "webhooks"]]);
      assert.match(health.problems[0].message, /^3 webhooks refused since the last accepted one — is SHOPIFY_WEBHOOK_SECRET the app's secret\?/);
      assert.equal(health.webhooks_refused.wrong_shop, 0);
      assert.ok(!JSON.stringify(health).includes("the-apps-api-key"), "no secret in the report");

      const adminPage = await (await worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
      const banner = adminPage.indexOf('<div class="banner bad" role="alert"><b>Status: degraded</b>');
      assert.ok(banner > 0 && banner < adminPage.indexOf("<header>"), "a banner at the top");
      assert.match(adminPage, /<li><code>SHOPIFY_WEBHOOK_SECRET<\/code>: 3 webhooks refused since the last accepted one — is SHOPIFY_WEBHOOK_SECRET the app&#39;s secret\?/);
      assert.equal((await adminJson(worker)).health.webhooks_refused.bad_hmac, 3);

      // Nothing an outsider sends clears it: more junk, another shop's name, no signature.
      assert.equal((await deliverWebhook(worker, "orders/create", order, { hmac: null })).status, 401);
      assert.equal((await deliverWebhook(worker, "orders/create", order, { secret: "guess", shop: "other.myshopify.com" })).status, 401);
      const still = await worker.fetch("/tt/health");
      assert.equal(still.status, 424);
      assert.ok((await still.json()).webhooks_refused.bad_hmac >= 3);

      // A webhook the Worker accepts (signed with the secret it has) clears the count.
      const accepted = await deliverWebhook(worker, "orders/create", order, { secret: "the-apps-api-key-not-its-secret" });
      assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
      const cleared = await waitFor("the count cleared", async () => {
        const res = await worker.fetch("/tt/health");
        return res.status === 200 && res.json();
      });
      assert.equal(cleared.status, "ok");
      assert.equal(cleared.webhooks_refused, null);
    }, { persistDir });

    // Refused again; then the merchant corrects the secret: the count of the old settings no
    // longer applies, before any webhook comes.
    await withWorker({ ...shop, SHOPIFY_WEBHOOK_SECRET: "the-apps-api-key-not-its-secret" }, async (worker) => {
      assert.equal((await deliverWebhook(worker, "orders/create", order)).status, 401);
      await waitFor("the refusal counted", async () => (await worker.fetch("/tt/health")).status === 424);
    }, { persistDir });
    await withWorker({ ...shop, SHOPIFY_WEBHOOK_SECRET: WEBHOOK_SECRET }, async (worker) => {
      const res = await worker.fetch("/tt/health");
      assert.equal(res.status, 200);
      assert.equal((await res.json()).webhooks_refused, null);
      assert.equal((await deliverWebhook(worker, "orders/create", order)).status, 200);
    }, { persistDir });

    // A correctly signed webhook of another shop: a wrong SHOPIFY_SHOP_DOMAIN, with its own hint.
    await withWorker({ ...shop, SHOPIFY_WEBHOOK_SECRET: WEBHOOK_SECRET, SHOPIFY_SHOP_DOMAIN: "typo-shop.myshopify.com" }, async (worker) => {
      assert.equal((await deliverWebhook(worker, "orders/create", order)).status, 403);
      const health = await waitFor("the wrong shop counted", async () => {
        const h = await (await worker.fetch("/tt/health")).json();
        return h.webhooks_refused?.wrong_shop === 1 && h;
      });
      assert.equal(health.status, "degraded");
      assert.deepEqual(health.problems.map((p) => p.name), ["SHOPIFY_SHOP_DOMAIN"]);
      assert.match(health.problems[0].message, /^1 webhook refused since the last accepted one — is SHOPIFY_SHOP_DOMAIN the shop's permanent domain\?/);
    });
  } finally {
    rmSync(persistDir, { recursive: true, force: true });
  }
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
