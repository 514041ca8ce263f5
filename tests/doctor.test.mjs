// `npm run doctor -- <shop>` (scripts/doctor.mjs), run as the command, against the built Worker
// in workerd in front of a played storefront, with Shopify's Admin API and TikTok played.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT, startShop, startServer, waitFor, adminJson, countOf, tiktokAnswer, ADMIN_TOKEN, postCollect, deliverWebhook, loadFixture } from "./support/harness.mjs";
import { startShopifyAdmin, SHOPIFY_TOKEN } from "./support/shopify-admin.mjs";
import { WEBHOOK_TOPICS } from "../scripts/lib/shopify-admin.mjs";

const PRODUCT_PAGE = "<!doctype html><html><head><title>Mug</title></head><body>mug</body></html>";

// A storefront with one product, listed in its public /products.json as Shopify's are.
const storefront = (req, res) => {
  if (req.url.startsWith("/products.json")) {
    return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ products: [{ id: 1, handle: "demo-mug" }] }));
  }
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PRODUCT_PAGE);
};

/** Runs the command for `shopUrl` with settings in a scratch settings file; resolves { code, out }. */
const runDoctor = (shopUrl, settings) => runDoctorWith([shopUrl], { settings });

const operatorSettings = (shopify) => ({
  SHOPIFY_STORE: "demo.myshopify.com", SHOPIFY_ADMIN_TOKEN: SHOPIFY_TOKEN, SHOPIFY_ADMIN_API_BASE: shopify.url, ADMIN_TOKEN,
});

test("a healthy shop: every check passes, exit code 0", async () => {
  const env = await startShop({ origin: storefront });
  const uri = `${env.worker.url}/tt/webhooks/shopify`;
  const shopify = await startShopifyAdmin({ subscriptions: WEBHOOK_TOPICS.map((topic) => ({ topic, uri })) });
  try {
    const { code, out } = await runDoctor(env.worker.url, operatorSettings(shopify));
    assert.equal(code, 0, out);
    assert.match(out, /✓ health: ok, mode live/);
    assert.match(out, /✓ \/products\/demo-mug: <script src="\/tt\/pixel\.js"> is on the page/);
    assert.match(out, /✓ _ttp set first-party by 127\.0\.0\.1 \(host-only, Secure, SameSite=Lax, \d+ days\)/);
    assert.match(out, new RegExp(`✓ webhooks: all 8 topics deliver to ${uri} as JSON`));
    assert.match(out, /✓ recent events: 0 sent in 24 h, none failed/);
    assert.match(out, /All checks passed/);
    // The Admin API was asked with the token, at the current version; admin.json with the bearer token.
    assert.equal(shopify.requests[0].headers["x-shopify-access-token"], SHOPIFY_TOKEN);
    assert.equal(shopify.requests[0].url, "/admin/api/2026-10/graphql.json");
  } finally {
    await shopify.close();
    await env.close();
  }
});

test("a shop with problems: each named with its fix, exit code 1", async () => {
  // No injected tag, consent required before any cookie, a refused event, two topics missing
  // and one still delivering to an earlier host.
  const env = await startShop({
    origin: storefront,
    bindings: { INJECT_PIXEL: "false", CONSENT_DEFAULT: "denied" },
    tiktok: (req, res) => res.writeHead(200).end(req.body.includes("vc:refused")
      ? tiktokAnswer(40002, "Invalid value for field: event_id") : tiktokAnswer(0)),
  });
  const uri = `${env.worker.url}/tt/webhooks/shopify`;
  const shopify = await startShopifyAdmin({
    subscriptions: [
      ...WEBHOOK_TOPICS.filter((t) => !["CARTS_CREATE", "CARTS_UPDATE", "ORDERS_EDITED"].includes(t)).map((topic) => ({ topic, uri })),
      { topic: "ORDERS_EDITED", uri: "https://old-shop.example.com/tt/webhooks/shopify" },
    ],
  });
  try {
    const collect = await postCollect(env.worker, { event: "ViewContent", event_id: "vc:refused" }, { cookie: "_tt_consent=granted" });
    assert.equal(collect.status, 202, await collect.text());
    await waitFor("the refused event", async () => (await adminJson(env.worker)).queue.last_failures.length === 1);

    const { code, out } = await runDoctor(env.worker.url, operatorSettings(shopify));
    assert.equal(code, 1, out);
    assert.match(out, /✓ health: ok, mode live/);
    assert.match(out, /✗ \/products\/demo-mug \(HTTP 200\) has no <script src="\/tt\/pixel\.js">\n {2}fix: set INJECT_PIXEL=true/);
    assert.match(out, /✓ _ttp set first-party .* \(only after consent: CONSENT_DEFAULT is denied/);
    assert.match(out, /✗ webhooks missing for .*: CARTS_CREATE, CARTS_UPDATE, ORDERS_EDITED \(delivers to https:\/\/old-shop\.example\.com\/tt\/webhooks\/shopify, JSON\)\n {2}fix: run `npm run deploy`/);
    assert.match(out, /✗ 1 event\(s\) refused by TikTok recently: ViewContent vc:refused: .*40002.*Invalid value for field/);
    assert.match(out, /3 problem\(s\) found/);
  } finally {
    await shopify.close();
    await env.close();
  }
});

test("dry run, a wrong Shopify token, a wrong admin token, and an address without the Worker", async () => {
  const env = await startShop({ origin: storefront, bindings: { TIKTOK_ACCESS_TOKEN: "" } });
  const shopify = await startShopifyAdmin();
  try {
    const { code, out } = await runDoctor(env.worker.url, {
      ...operatorSettings(shopify), SHOPIFY_ADMIN_TOKEN: "shpat_revoked", ADMIN_TOKEN: "not-the-admin-token",
    });
    assert.equal(code, 1, out);
    assert.match(out, /✗ mode dry_run: events are recorded but not sent to TikTok\n {2}fix: set TIKTOK_ACCESS_TOKEN/);
    assert.match(out, /✗ Shopify refused the Admin API token for demo\.myshopify\.com \(401: \[API\] Invalid API key or access token \(unrecognized login or wrong password\)\)\n {2}fix: set SHOPIFY_ADMIN_TOKEN/);
    assert.match(out, /✗ .*\/tt\/admin\.json refused ADMIN_TOKEN \(401\)/);
    assert.match(out, /✓ \/products\/demo-mug: <script src="\/tt\/pixel\.js"> is on the page/, "the other checks still ran");

    // The storefront itself, not through the Worker.
    const bare = await runDoctor(env.origin.url, {});
    assert.equal(bare.code, 1);
    assert.match(bare.out, /✗ .*\/tt\/health is not the Worker's \(HTTP 200, text\/html; charset=utf-8\)\n {2}fix: the hostname does not reach the Worker/);
  } finally {
    await shopify.close();
    await env.close();
  }
});

test("a Worker whose sending is paused (TikTok refused the token): doctor names the reason", async () => {
  // /tt/health as a Worker reports a pause (status "paused", 503, queue_paused): played here,
  // in the Health shape of crates/core, since only a live TikTok refusal makes a real one.
  const paused = {
    status: "paused", version: "0.1.0", mode: "live", tiktok_configured: true, webhook_secret_configured: true,
    config: {}, problems: [], queue_depth: 3,
    queue_paused: { reason: "TikTok code 40105: Access token is invalid; set a new one", since_ms: 1, next_check_ms: 2, checks: 1 },
  };
  const worker = await startServer((req, res) => (req.url === "/tt/health?queue=1"
    ? res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify(paused))
    : storefront(req, res)));
  try {
    const { code, out } = await runDoctor(worker.url, {});
    assert.equal(code, 1, out);
    assert.match(out, /✗ sending to TikTok is paused: TikTok code 40105: Access token is invalid; set a new one\n {2}fix: correct the TikTok setting it names/);
  } finally {
    await worker.close();
  }
});

/** Runs the command with `args`, a settings file and a .dev.vars (DEV_VARS_FILE); resolves { code, out }. */
async function runDoctorWith(args, { settings = {}, devVars, env = {} } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "doctor-test-"));
  const envFile = path.join(dir, "deploy.env");
  const devVarsFile = path.join(dir, "dev.vars");
  writeFileSync(envFile, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(""));
  if (devVars) writeFileSync(devVarsFile, Object.entries(devVars).map(([k, v]) => `${k}=${v}\n`).join(""));
  try {
    const { stdout } = await promisify(execFile)("node", ["scripts/doctor.mjs", ...args], {
      cwd: ROOT, env: { PATH: process.env.PATH, HOME: dir, DEPLOY_ENV_FILE: envFile, DEV_VARS_FILE: devVarsFile, ...env }, timeout: 60_000,
    });
    return { code: 0, out: stdout };
  } catch (e) {
    if (typeof e.code !== "number") throw e;
    return { code: e.code, out: e.stdout + e.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a local Worker: a bare host:port, its .dev.vars read, skipped checks marked skipped, dry-run events counted as such", async () => {
  const env = await startShop({ origin: storefront, bindings: { TIKTOK_ACCESS_TOKEN: "" } });
  try {
    const collect = await postCollect(env.worker, { event: "ViewContent", event_id: "vc:dry" }, { cookie: "_tt_consent=granted" });
    assert.equal(collect.status, 202);
    await waitFor("the dry-run event", async () => (await adminJson(env.worker)).queue.counts.some((c) => c.state === "dry_run"));
    // No settings file; the local Worker's .dev.vars holds ADMIN_TOKEN, as scripts/dev.sh's does.
    const { code, out } = await runDoctorWith([env.worker.url.replace("http://", "")], { devVars: { ADMIN_TOKEN } });
    assert.equal(code, 1, out);
    assert.match(out, /^Checking http:\/\/127\.0\.0\.1:\d+$/m);
    assert.match(out, /✗ mode dry_run: events are recorded but not sent to TikTok/);
    assert.match(out, /^– webhook subscriptions: skipped \(set SHOPIFY_STORE/m);
    assert.ok(!/✓ webhook/.test(out), "a skipped check is not passed");
    assert.match(out, /✓ recent events: 1 recorded in dry run \(not sent: no TIKTOK_ACCESS_TOKEN\) in 24 h, none failed/);
    assert.ok(!/0 sent/.test(out), out);
    assert.match(out, /1 problem\(s\) found \(1 check skipped\)/);

    // Without ADMIN_TOKEN anywhere, that check is skipped too, never ticked.
    const bare = await runDoctorWith([env.worker.url]);
    assert.match(bare.out, /^– recent failures and parked webhooks: skipped \(set ADMIN_TOKEN/m);
    assert.match(bare.out, /\(2 checks skipped\)/);
  } finally {
    await env.close();
  }
});

test("a wrong webhook secret fails doctor with the Worker's hint", async () => {
  const env = await startShop({ origin: storefront, bindings: { SHOPIFY_WEBHOOK_SECRET: "the-apps-api-key" } });
  try {
    assert.equal((await deliverWebhook(env.worker, "orders/create", loadFixture("order_create.json"))).status, 401);
    await waitFor("the refusal counted", async () => (await env.worker.fetch("/tt/health")).status === 424);
    const { code, out } = await runDoctorWith([env.worker.url], { settings: { ADMIN_TOKEN } });
    assert.equal(code, 1, out);
    assert.match(out, /✗ health: degraded: SHOPIFY_WEBHOOK_SECRET: 1 webhook refused since the last accepted one — is SHOPIFY_WEBHOOK_SECRET the app's secret\?/);
  } finally {
    await env.close();
  }
});

test("a shop that does not answer: doctor stops at the first cause, and never blames DNS when the host answers", async () => {
  // The Worker answers, the shop behind it does not.
  const env = await startShop({ origin: storefront });
  await env.origin.close();
  try {
    const { code, out } = await runDoctorWith([env.worker.url], { settings: { ADMIN_TOKEN } });
    assert.equal(code, 1, out);
    assert.match(out, /✗ \/: HTTP 502 from the Worker: the shop's origin did not answer.*\n {2}fix: the hostname reaches the Worker, but the shop behind it did not answer/);
    assert.ok(!/_ttp|pixel\.js|DNS|proxied/.test(out), out);
  } finally {
    await env.worker.dispose();
    await env.tiktok.close();
  }
  // Nothing answers at all: one problem, what to do about it, and no further checks.
  const closed = await startServer(() => {});
  await closed.close();
  const nothing = await runDoctorWith([closed.url]);
  assert.equal(nothing.code, 1);
  assert.match(nothing.out, /✗ .*could not be reached \(ECONNREFUSED.*\n {2}fix: nothing answers there: start the local Worker \(`bash scripts\/dev\.sh`\)/);
  assert.match(nothing.out, /1 problem\(s\) found/);
});

test("a registry: no argument checks every shop, one line each; a shop's name checks that shop in full", async () => {
  // acme: healthy, one event sent. bravo: TikTok refused an event, and a webhook signed with another secret was refused.
  const acme = await startShop({ origin: storefront });
  const bravo = await startShop({
    origin: storefront,
    tiktok: (req, res) => res.writeHead(200).end(req.body.includes("vc:refused") ? tiktokAnswer(40002, "Invalid value for field: event_id") : tiktokAnswer(0)),
  });
  const dir = mkdtempSync(path.join(tmpdir(), "doctor-shops-"));
  const shop = (name) => ({ name, shopify_domain: `${name}.myshopify.com`, hostnames: [{ host: `www.${name}.com` }], pixels: [{ id: "C1" }], secrets: ["SHOPIFY_WEBHOOK_SECRET", "ADMIN_TOKEN", "TIKTOK_ACCESS_TOKEN"] });
  writeFileSync(path.join(dir, "shops.json"), JSON.stringify({ shops: [shop("acme"), shop("bravo")] }));
  writeFileSync(path.join(dir, "acme.env"), `SHOP_URL=${acme.worker.url}\nADMIN_TOKEN=${ADMIN_TOKEN}\n`);
  writeFileSync(path.join(dir, "bravo.env"), `SHOP_URL=${bravo.worker.url}\nADMIN_TOKEN=${ADMIN_TOKEN}\n`);
  const env = { SHOPS_FILE: path.join(dir, "shops.json"), DEPLOY_DIR: dir };
  try {
    await postCollect(acme.worker, { event: "ViewContent", event_id: "vc:fine" }, { cookie: "_tt_consent=granted" });
    await postCollect(bravo.worker, { event: "ViewContent", event_id: "vc:refused" }, { cookie: "_tt_consent=granted" });
    await waitFor("acme's event sent", async () => countOf(await adminJson(acme.worker), "ViewContent", "sent") === 1);
    await waitFor("bravo's refused event", async () => (await adminJson(bravo.worker)).queue.last_failures.length === 1);
    assert.equal((await deliverWebhook(bravo.worker, "orders/create", loadFixture("order_create.json"), { secret: "not-bravos-secret" })).status, 401);
    await waitFor("the refusal counted", async () => (await bravo.worker.fetch("/tt/health")).status === 424);
    // acme's webhooks work: a signed order from the point of sale is accepted (and sends nothing).
    const pos = { ...loadFixture("order_create.json"), source_name: "pos" };
    assert.equal((await deliverWebhook(acme.worker, "orders/create", pos)).status, 200);
    await waitFor("acme's accepted webhook noted", async () => (await (await acme.worker.fetch("/tt/health")).json()).webhook_accepted_ms > 0);

    const all = await runDoctorWith([], { env });
    assert.equal(all.code, 1, all.out);
    const lines = all.out.trim().split("\n");
    assert.match(lines[0], /^✓ acme: health ok \(live\) · last webhook accepted \d+ s ago, none refused · last event sent \d+ s ago \(ViewContent\) · 0 failed, queue depth 0$/);
    assert.match(lines[1], /^✗ bravo: health degraded \(live\) · last webhook never accepted, 1 refused since, last \d+ s ago · no event sent in 24 h · 1 failed, queue depth 0 · 2 problem\(s\)$/);
    assert.match(all.out, /2 problem\(s\) found: `npm run doctor -- <shop>` shows each with its fix/);
    assert.ok(!/Checking|✗ health/.test(all.out), "one line per shop, no details");

    const one = await runDoctorWith(["bravo"], { env });
    assert.equal(one.code, 1, one.out);
    assert.match(one.out, new RegExp(`^Checking ${bravo.worker.url}$`, "m"));
    assert.match(one.out, /✗ health: degraded: SHOPIFY_WEBHOOK_SECRET: 1 webhook refused/);
    assert.match(one.out, /✗ 1 event\(s\) refused by TikTok recently: ViewContent vc:refused/);
    assert.match(one.out, /^✗ bravo: health degraded/m);
    assert.ok(!one.out.includes("acme"), "only the shop named");

    // A hostname still works as before, with a registry present.
    const byUrl = await runDoctorWith([acme.worker.url], { env, settings: { ADMIN_TOKEN } });
    assert.match(byUrl.out, /✓ health: ok, mode live/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([acme.close(), bravo.close()]);
  }
});
