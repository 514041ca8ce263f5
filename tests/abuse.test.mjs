// What an outsider with curl can make the Worker keep or send: personal data in a URL reaches
// neither TikTok nor KV (only attribution parameters are kept), page views write KV only within
// the client's budget and a `_ttp` the Worker never proved keeps no session, and one captured
// signed body parks one record per topic, a hundred a day at most.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startShop, waitFor, adminJson, deliverWebhook, loadFixture, big, toJson, signWebhook, postCollect,
  settled, inOneRateWindow, setCookieValue, cookieJar, ADMIN_TOKEN,
} from "./support/harness.mjs";

const PURCHASE = "Purchase";
const ALLOWLIST = new Set([
  "ttclid", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id",
  "utm_source_platform", "utm_creative_format", "utm_marketing_tactic",
]);
/** The budget of KV writes per client and minute: COLLECT_RATE_LIMITER's limit, as in wrangler.toml. */
const BUDGET = 120;
const TAG = '<script src="/tt/pixel.js" async></script>';

async function navigate(env, jar, path, ip = "203.0.113.61") {
  const res = await env.worker.fetch(path, { headers: { cookie: jar.header(), "cf-connecting-ip": ip, "user-agent": "AbuseTest/1.0" } });
  assert.equal(res.status, 200);
  jar.take(res);
  await res.arrayBuffer();
  return res;
}

const kvOf = (env) => env.worker.mf.getKVNamespace("SESSIONS");
/** Every KV key and value, as one text to search. */
async function kvText(env) {
  const kv = await kvOf(env);
  const { keys } = await kv.list();
  const values = await Promise.all(keys.map((k) => kv.get(k.name)));
  return keys.map((k, i) => `${k.name} => ${values[i]}`).join("\n");
}

test("a landing URL with email=, phone= and a recovery key reaches neither TikTok nor KV; attribution parameters still do", async () => {
  // The checkout pixel's copy goes out alone after a second: its page URL is seen at TikTok.
  const env = await startShop({ bindings: { PURCHASE_EVENT_NAME: PURCHASE, WEBHOOK_WAIT_MS: "1000" } });
  const secrets = ["jane", "%40", "@example", "15551234567", "SECRETKEY0123", "tok-SECRET"];
  try {
    // An ad click whose landing URL a mail tool decorated with the subscriber's contact details.
    const clicked = cookieJar();
    await navigate(env, clicked, "/products/mug?email=jane.doe%40example.com&phone=%2B15551234567&ttclid=E.C.P.leak1&utm_source=tiktok&utm_campaign=spring&utm_term=jane%40example.com");
    const ttp = clicked.get("_ttp");
    const kv = await kvOf(env);
    const session = await waitFor("the click's session", async () => JSON.parse((await kv.get(`session:${ttp}`)) ?? "null"));
    assert.match(session.landing_url, /^http:\/\/[^/]+\/products\/mug\?ttclid=E\.C\.P\.leak1&utm_source=tiktok&utm_campaign=spring$/);

    // Shopify's abandoned-checkout email: the link's key is the checkout's secret.
    const cart = "Z2NwLXVzLWVhc3QxOjAxSkxFQUtFRENBUlQwMDAwMDAwMDAwMDE";
    const recovered = cookieJar();
    const recover = `/checkouts/ac/${cart}/recover?key=SECRETKEY0123&email=jane.doe%40example.com&utm_medium=email`;
    await navigate(env, recovered, recover);
    assert.equal(await waitFor("the recovered cart's link", () => kv.get(`cart:${cart}`)), recovered.get("_ttp"));
    await navigate(env, recovered, recover); // the cookie comes back: the session is kept
    const kept = await waitFor("the recovering visitor's session", async () => JSON.parse((await kv.get(`session:${recovered.get("_ttp")}`)) ?? "null"));
    assert.match(kept.landing_url, new RegExp(`^http://[^/]+/checkouts/ac/${cart}/recover\\?utm_medium=email$`));

    // The browser's copies: the storefront's and the checkout pixel's page URLs carry them too.
    const page = {
      url: "https://shop.example/?email=jane.doe%40example.com&key=SECRETKEY0123&ttclid=E.C.P.leak1#jane",
      referrer: "https://mail.example/c?token=tok-SECRET&e=jane.doe@example.com",
    };
    assert.equal((await postCollect(env.worker, { event: "ViewContent", event_id: "vc:leak1", page }, { origin: env.worker.url, cookie: clicked.header() })).status, 202);
    const checkoutPage = { url: `https://shop.example/checkouts/cn/${cart}?key=SECRETKEY0123&phone=%2B15551234567` };
    const icId = "ic:b1a0c0ffee0000000000000000000001";
    assert.equal((await postCollect(env.worker, { event: "InitiateCheckout", event_id: icId, page: checkoutPage, user: { ttp: recovered.get("_ttp") } }, { origin: "null" })).status, 202);

    // The recovered checkout's order joins the recovering visitor's session, page URL and all.
    const orderId = "5900000000000000901";
    const order = {
      ...loadFixture("order_create.json"), id: big(orderId), cart_token: cart, checkout_token: "b1a0c0ffee0000000000000000000001",
      note_attributes: [], client_details: null, browser_ip: null, landing_site: null,
    };
    assert.equal((await deliverWebhook(env.worker, "orders/create", order)).body.queued, 1);

    await waitFor("the checkout pixel's copy", () => env.sentEvents().some((e) => e.event_id === icId));
    const sent = await settled(env);
    assert.equal(sent.find((e) => e.event_id === icId).page.url, `https://shop.example/checkouts/cn/${cart}`);
    const purchase = sent.find((e) => e.event_id === orderId);
    assert.equal(purchase?.user.ttp, recovered.get("_ttp"), "the order joined the recovering visitor");
    assert.match(purchase.page.url, new RegExp(`/checkouts/ac/${cart}/recover\\?utm_medium=email$`));
    assert.equal(sent.find((e) => e.event_id === "vc:leak1")?.page.url, "https://shop.example/?ttclid=E.C.P.leak1");
    const bodies = env.tiktok.requests.map((r) => r.body.toString()).join("\n");
    for (const secret of [...secrets, "#"]) assert.ok(!bodies.includes(secret), `${secret} reached TikTok: ${bodies}`);
    for (const event of sent) {
      for (const url of [event.page?.url, event.page?.referrer].filter(Boolean)) {
        for (const name of new URL(url).searchParams.keys()) assert.ok(ALLOWLIST.has(name), `${name} in ${url}`);
      }
    }

    const stored = await kvText(env);
    assert.ok(stored.includes("utm_source=tiktok"), "attribution parameters are kept");
    for (const secret of secrets) assert.ok(!stored.includes(secret), `${secret} in KV:\n${stored}`);
    for (const line of env.worker.logs) for (const secret of secrets) assert.ok(!line.includes(secret), line);
  } finally {
    await env.close();
  }
});

/** KV keys a page view can write: sessions and join links. */
async function pageKeys(env) {
  const { keys } = await (await kvOf(env)).list();
  return keys.map((k) => k.name).filter((k) => /^(session|cart|checkout|click):/.test(k));
}

/**
 * Sends 300 page views from one client (`request(i)`: path and cookie), then, once a page from
 * another client has written its session, the KV keys the 300 wrote. Every page is served.
 */
async function flood(env, request) {
  const ip = "198.51.100.77";
  await inOneRateWindow(async () => {
    for (let i = 0; i < 300; i++) {
      const { path, cookie } = request(i);
      const res = await env.worker.fetch(path, { headers: { "cf-connecting-ip": ip, cookie: cookie ?? "" } });
      assert.equal(res.status, 200);
      assert.ok((await res.text()).includes(TAG), "the page is served as always");
    }
  }, 20_000);
  // Writes happen after each answer: a later page's write from elsewhere marks the end.
  const sentinel = await env.worker.fetch("/?ttclid=E.C.P.sentinel", { headers: { "cf-connecting-ip": "192.0.2.200" } });
  const sentinelTtp = setCookieValue(sentinel, "_ttp");
  await sentinel.arrayBuffer();
  await waitFor("the sentinel's session", async () => (await pageKeys(env)).includes(`session:${sentinelTtp}`));
  return (await pageKeys(env)).filter((k) => k !== `session:${sentinelTtp}` && k !== "click:E.C.P.sentinel");
}

test("300 page views from one client with fresh ?ttclid= write at most the client's budget of KV keys", async () => {
  const env = await startShop();
  try {
    const keys = await flood(env, (i) => ({ path: `/products/mug?ttclid=E.C.P.flood${i}` }));
    assert.equal(keys.length, BUDGET, "each click's session and link until the budget is spent, none after");
    assert.equal(keys.filter((k) => k.startsWith("click:")).length, BUDGET / 2, "each session first, then its click");
    assert.ok(env.worker.logs.some((l) => l.includes('"event":"page_writes_over_budget"')));
  } finally {
    await env.close();
  }
});

test("300 page views with made-up _ttp cookies write no session; a _ttp comes back proven before its session is kept", async () => {
  const env = await startShop();
  try {
    const made = (i) => `01JY68${String(i).padStart(20, "0")}_.tt.1`;
    const keys = await flood(env, (i) => ({ path: "/products/mug", cookie: `_ttp=${made(i)}` }));
    assert.deepEqual(keys, [], "a _ttp the Worker never proved keeps nothing");

    // A visitor whose _ttp TikTok's SDK set (or a Worker before the proof existed) is adopted:
    // the first page gives the proof, the next keeps the session; the value never changes.
    const jar = cookieJar({ _ttp: "01JY68SDKSETSDKSETSDKSET00_.tt.1" });
    const first = await navigate(env, jar, "/products/mug");
    assert.equal(setCookieValue(first, "_ttp"), "01JY68SDKSETSDKSETSDKSET00_.tt.1");
    assert.match(jar.get("_tt_p") ?? "", /^[A-Za-z0-9_-]{22}$/);
    assert.equal(jar.get("_tt_s"), undefined, "no session yet");
    await navigate(env, jar, "/collections/all");
    assert.equal(jar.get("_tt_s"), "1");
    const session = await waitFor("the adopted visitor's session", async () => JSON.parse((await (await kvOf(env)).get("session:01JY68SDKSETSDKSETSDKSET00_.tt.1")) ?? "null"));
    assert.equal(session.ip, "203.0.113.61");
    // A proof does not travel to another _ttp.
    const other = cookieJar({ _ttp: "01JY68OTHEROTHEROTHEROTHER_.tt.1", _tt_p: jar.get("_tt_p") });
    await navigate(env, other, "/collections/all");
    assert.equal(other.get("_tt_s"), undefined);
  } finally {
    await env.close();
  }
});

test("300 checkout pages with a cart cookie write at most the client's budget of KV keys, proven _ttp or not; a checkout page links once", async () => {
  const env = await startShop();
  try {
    const token = (prefix, i) => `${prefix}${String(i).padStart(24, "0")}`;
    const made = await flood(env, (i) => ({
      path: `/checkouts/cn/${token("Z2Nw", i)}?key=k`,
      cookie: `_ttp=01JY68${String(i).padStart(20, "0")}_.tt.1; cart=${token("c1-", i)}%3Fkey%3Ds`,
    }));
    // Two links a page (its cart, its checkout), no session: 60 pages' worth, then nothing.
    assert.equal(made.length, BUDGET);
    assert.ok(!made.some((k) => k.startsWith("session:")), "no session for a made-up _ttp");
  } finally {
    await env.close();
  }
  const again = await startShop();
  try {
    // The attacker takes one genuine _ttp and its proof, and replays them without the markers.
    const jar = cookieJar();
    await navigate(again, jar, "/");
    const proven = `_ttp=${jar.get("_ttp")}; _tt_p=${jar.get("_tt_p")}`;
    const token = (prefix, i) => `${prefix}${String(i).padStart(24, "0")}`;
    const keys = await flood(again, (i) => ({ path: `/checkouts/cn/${token("Z2Nw", i)}`, cookie: `${proven}; cart=${token("c1-", i)}` }));
    // Three writes a page (the session, rewritten under one key, and two links): 40 pages.
    assert.deepEqual([keys.length, keys.filter((k) => k.startsWith("session:")).length], [BUDGET / 3 * 2 + 1, 1]);

    // A shopper's next checkout step links nothing again.
    const shopper = cookieJar();
    await navigate(again, shopper, "/", "203.0.113.62");
    await navigate(again, shopper, "/checkouts/cn/Z2NwLXVzLWVhc3QxOjAxSk9OQ0UwMDAwMDAwMDAwMDAx", "203.0.113.62");
    assert.equal(shopper.get("_tt_k"), "Z2NwLXVzLWVhc3QxOjAxSk9OQ0UwMDAwMDAwMDAwMDAx");
    const kv = await kvOf(again);
    await waitFor("the checkout's link", () => kv.get("cart:Z2NwLXVzLWVhc3QxOjAxSk9OQ0UwMDAwMDAwMDAwMDAx"));
    const next = await again.worker.fetch("/checkouts/cn/Z2NwLXVzLWVhc3QxOjAxSk9OQ0UwMDAwMDAwMDAwMDAx/shipping", { headers: { cookie: shopper.header(), "cf-connecting-ip": "203.0.113.62" } });
    assert.ok(!next.headers.getSetCookie().some((c) => c.startsWith("_tt_k=")), "already linked");
    await next.arrayBuffer();
  } finally {
    await again.close();
  }
});

test("200 replays of one signed body under other topics park one record per topic; the admin shows the count beyond its list and the daily cap", async () => {
  const env = await startShop();
  try {
    const body = toJson({ ...loadFixture("order_create.json"), id: big("5900000000000000999") });
    const hmac = signWebhook(body);
    const topics = ["carts/create", "CARTS_CREATE", "carts/update", "checkouts/create", "checkouts/update", "orders/edited"];
    for (let i = 0; i < 200; i++) {
      const res = await deliverWebhook(env.worker, topics[i % topics.length], body, { hmac, webhookId: `replay-${i}` });
      assert.equal(res.status, 200);
      assert.ok(res.body.parked, JSON.stringify(res.body));
    }
    let admin = await adminJson(env.worker);
    assert.deepEqual(admin.parked_count, { total: 5, daily_cap_reached: false }, "one per topic (in either spelling) and body");
    assert.deepEqual(admin.parked_webhooks.map((p) => p.topic).sort(), ["carts/create", "carts/update", "checkouts/create", "checkouts/update", "orders/edited"]);

    // 30 other bodies: the page lists the newest 20 and says how many more there are.
    for (let i = 0; i < 30; i++) {
      const other = toJson({ ...loadFixture("order_create.json"), id: big(`59000000000000010${String(i).padStart(2, "0")}`) });
      assert.ok((await deliverWebhook(env.worker, "carts/create", other)).body.parked);
    }
    admin = await adminJson(env.worker);
    assert.equal(admin.parked_webhooks.length, 20);
    assert.deepEqual(admin.parked_count, { total: 35, daily_cap_reached: false });
    const page = await (await env.worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.ok(page.includes("The newest 20 of 35 parked webhooks (15 more not listed;"), page);

    // A hundred a day: later ones are answered alike and logged, not kept.
    for (let i = 0; i < 70; i++) {
      const other = toJson({ ...loadFixture("order_create.json"), id: big(`59000000000000020${String(i).padStart(2, "0")}`) });
      assert.ok((await deliverWebhook(env.worker, "carts/update", other)).body.parked);
    }
    admin = await adminJson(env.worker);
    assert.deepEqual(admin.parked_count, { total: 100, daily_cap_reached: true });
    assert.ok(env.worker.logs.some((l) => l.includes('"event":"webhook_parked"') && l.includes('"kept":"over_daily_cap"')));
    assert.equal((await (await kvOf(env)).list({ prefix: "parked:" })).keys.length, 100);
    const capped = await (await env.worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.ok(capped.includes("100 webhooks were parked in the last 24 hours"), capped);
  } finally {
    await env.close();
  }
});
