// The operator's view: /tt/admin behind ADMIN_TOKEN, its numbers from a scripted journey
// (checked through the JSON twin), rendered in real headless Chromium with a screenshot saved
// to artifacts/admin.png; /tt/health's queue depth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import {
  ROOT, startShop, waitFor, adminJson, countOf, tiktokAnswer, ADMIN_TOKEN, loadFixture,
  deliverWebhook, setCookieValue, postCollect,
} from "./support/harness.mjs";
import { launchChromium } from "./support/browser.mjs";

const FAILURE = "Invalid value for field: event_id (test)";

// TikTok refuses, without retry, any batch holding the event "vc:refused".
const setup = (bindings = {}) => startShop({
  bindings,
  tiktok: (req, res) => res.writeHead(200).end(req.body.includes("vc:refused") ? tiktokAnswer(40002, FAILURE) : tiktokAnswer(0)),
});

test("admin needs ADMIN_TOKEN: 404 when unset, 401 without or with a wrong token (a URL token counts for nothing), no-store when right", async () => {
  const off = await setup({ ADMIN_TOKEN: "" });
  try {
    for (const p of ["/tt/admin", "/tt/admin.json"]) assert.equal((await off.worker.fetch(`${p}?token=${ADMIN_TOKEN}`)).status, 404, p);
  } finally {
    await off.close();
  }
  const env = await setup();
  try {
    const attempts = [{}, { headers: { authorization: "Bearer wrong-token-0123456789" } }, { query: "?token=wrong" }, { query: `?token=${ADMIN_TOKEN}` }];
    for (const p of ["/tt/admin", "/tt/admin.json"]) {
      for (const { headers, query = "" } of attempts) {
        const res = await env.worker.fetch(`${p}${query}`, { headers });
        assert.equal(res.status, 401, `${p}${query}`);
        assert.ok(!(await res.text()).includes("<table"), "no data without the token");
      }
    }
    const page = await env.worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type"), /^text\/html/);
    assert.equal(page.headers.get("cache-control"), "no-store");
    assert.match(page.headers.get("content-security-policy"), /default-src 'none'/);
  } finally {
    await env.close();
  }
});

test("a scripted journey's numbers on the JSON twin and the page, rendered in Chromium (screenshot in artifacts/)", async () => {
  const env = await setup();
  try {
    const browser = { "cf-connecting-ip": "203.0.113.20", "user-agent": "AdminJourney/1.0" };
    const landing = await env.worker.fetch("/products/mug?ttclid=E.C.P.admin", { headers: browser });
    const jar = `_ttp=${setCookieValue(landing, "_ttp")}; ttclid=E.C.P.admin`;
    await landing.arrayBuffer();
    const collect = (event, event_id) => postCollect(env.worker, { event, event_id }, { ...browser, cookie: jar });
    for (const [event, id] of [["ViewContent", "vc:a1"], ["ViewContent", "vc:a2"], ["ViewContent", "vc:refused"], ["AddToCart", "atc:c1-admin:1:1"]]) {
      assert.equal((await collect(event, id)).status, 202);
    }
    assert.equal((await deliverWebhook(env.worker, "orders/create", loadFixture("order_create.json"))).body.queued, 1);
    assert.ok((await deliverWebhook(env.worker, "orders/create", '{"id":')).body.parked);

    const admin = await waitFor("every event sent or failed", async () => {
      const a = await adminJson(env.worker);
      return a.queue.depth === 0 && a.queue.recent.length === 5 && a.queue.recent.every((e) => e.state !== "queued") && a;
    });
    assert.equal(countOf(admin, "ViewContent", "sent"), 2);
    assert.equal(countOf(admin, "ViewContent", "failed"), 1);
    assert.equal(countOf(admin, "AddToCart", "sent"), 1);
    assert.equal(countOf(admin, "Purchase", "sent"), 1);
    assert.equal(admin.queue.events_in_window, 5);
    assert.equal(admin.queue.hourly.reduce((n, h) => n + h.count, 0), 5, "events per hour add up");
    // Browser events carry ttp, ttclid, ip and UA; the order carries those too (its cart
    // attributes, landing URL and client details) plus the buyer's email, phone, id, name,
    // zip, country and locale (its Accept-Language).
    assert.deepEqual(admin.queue.match_keys, {
      ttp: 5, ttclid: 5, ip: 5, user_agent: 5, email: 1, phone: 1, external_id: 1,
      first_name: 1, last_name: 1, zip_code: 1, country: 1, locale: 1,
    });
    assert.equal(admin.queue.last_failures.length, 1);
    assert.equal(admin.queue.last_failures[0].event_id, "vc:refused");
    assert.match(admin.queue.last_failures[0].error, /40002.*Invalid value for field/);
    assert.equal(admin.parked_webhooks.length, 1);
    assert.equal(admin.health.tiktok_configured, true);
    assert.equal(admin.health.webhook_secret_configured, true);
    assert.equal(admin.mode, "live");

    // Depth asks every queue shard: only on request; a monitor's plain poll goes without.
    assert.equal((await (await env.worker.fetch("/tt/health?queue=1")).json()).queue_depth, 0);
    assert.equal((await (await env.worker.fetch("/tt/health")).json()).queue_depth, null);

    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage({ viewport: { width: 1280, height: 900 } });
      const requested = [];
      page.on("request", (r) => requested.push(r.url()));
      // A browser signs in through the form once; the token never goes into a URL.
      const signIn = await page.goto(`${env.worker.url}/tt/admin`);
      assert.equal(signIn.status(), 401);
      await page.fill("input[name=token]", ADMIN_TOKEN);
      const [res] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      assert.equal(res.status(), 200);
      assert.equal(page.url(), `${env.worker.url}/tt/admin`);
      assert.ok(requested.every((u) => !u.includes(ADMIN_TOKEN)), "no URL carries the token");
      const [session] = await page.context().cookies();
      assert.equal(session.name, "tt_admin");
      assert.ok(session.httpOnly && session.secure && session.sameSite === "Strict", JSON.stringify(session));
      requested.length = 0;
      assert.equal((await page.reload()).status(), 200, "the session cookie keeps the browser signed in");
      assert.equal(requested.length, 1, `the page loads nothing else: ${requested.join(", ")}`);
      const text = await page.locator("body").innerText();
      for (const expected of ["ViewContent", "AddToCart", "Purchase", "vc:refused", "Invalid value for field", "orders/create"]) {
        assert.ok(text.includes(expected), `the page shows ${expected}`);
      }
      assert.equal(await page.locator("svg rect title, svg title").count() > 0, true, "the hourly chart is drawn");
      const artifacts = path.join(ROOT, "artifacts");
      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, "admin.png"), fullPage: true });
    } finally {
      await chromium.close();
    }
  } finally {
    await env.close();
  }
});

test("the page shows each pixel of TIKTOK_PIXELS: live or dry run, markets, events, and a paused one with TikTok's message", async () => {
  const env = await startShop({
    bindings: {
      TIKTOK_PIXEL_ID: "",
      TIKTOK_PIXELS: JSON.stringify([{ id: "CALLPIXEL1" }, { id: "CFRPIXEL01", token: "TIKTOK_TOKEN_FR", markets: ["fr"], events: ["Purchase", "AddToCart"] }, { id: "CDEPIXEL01", token: "TIKTOK_TOKEN_DE", markets: ["de"] }]),
      TIKTOK_TOKEN_FR: "tok-fr", // TIKTOK_TOKEN_DE is not set: that pixel is in dry run
    },
    // TikTok refuses the fr pixel's token.
    tiktok: (req, res) => res.writeHead(200).end(req.headers["access-token"] === "tok-fr" ? tiktokAnswer(40105, "Access token <revoked>") : tiktokAnswer(0)),
  });
  try {
    const properties = { currency: "EUR", market_handle: "fr", contents: [{ content_id: "42001234567890123", quantity: 1, price: "10.00" }] };
    assert.equal((await postCollect(env.worker, { event: "AddToCart", event_id: "atc:admin-fr", properties }, { cookie: "_ttp=01JY68AFXQXP2232M0V748XS0P_.tt.1" })).status, 202);
    await waitFor("the fr pixel paused", async () => (await (await env.worker.fetch("/tt/health")).json()).pixels[1].paused);
    const html = await (await env.worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    const rows = [...html.slice(html.indexOf("<h2>Pixels</h2>")).matchAll(/<tr><td><code>(C\w+)<\/code><\/td>(.*?)<\/tr>/g)].map(([, id, rest]) => [id, rest.replace(/<[^>]+>/g, "|").replace(/\|+/g, "|")]);
    assert.deepEqual(rows.map(([id]) => id), ["CALLPIXEL1", "CFRPIXEL01", "CDEPIXEL01"]);
    assert.equal(rows[0][1], "|live|TIKTOK_ACCESS_TOKEN|all (those no scoped pixel serves)|every|sending|");
    assert.match(rows[1][1], /^\|live\|TIKTOK_TOKEN_FR\|fr\|Purchase, AddToCart\|paused\| since \|[-0-9T:]+Z\|: TikTok code 40105: Access token &lt;revoked&gt;; generate a new .*wrangler secret put TIKTOK_TOKEN_FR`/);
    assert.equal(rows[2][1], "|dry run|TIKTOK_TOKEN_DE|de|every|recorded, not sent: its token's secret is not set|");
    assert.ok(html.includes("<b>Status: degraded</b>"), "the banner names the paused pixel");
    assert.ok(!html.includes("tok-fr"), "never a token");
  } finally {
    await env.close();
  }
});
