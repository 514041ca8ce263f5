// End-to-end harness: the built Worker (src/entry.js over build/index.js + wasm) runs in workerd through
// Miniflare with real local KV and SQLite-backed Durable Objects. Only what lies outside the
// product is played by the test, as real HTTP servers on 127.0.0.1: the Shopify origin and
// TikTok's API (the Worker reaches them through ORIGIN_URL and TIKTOK_API_BASE, the same code
// path as production).
import { Miniflare } from "miniflare";
import http from "node:http";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const COMPATIBILITY_DATE = "2026-07-01"; // keep equal to wrangler.toml

/** A local HTTP server that records every request (with its whole body) and answers with `handler`. */
export async function startServer(handler) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    await new Promise((r) => req.on("end", r));
    const record = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
    requests.push(record);
    try {
      await handler(record, res, req);
    } catch (e) {
      res.writeHead(599).end(String(e));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** The window of the local rate limiters, in seconds (Miniflare allows 10 or 60). */
const RATE_PERIOD_S = 60;

/** The shop's hostname when a test plays a Cloudflare route (`routedTo`). */
export const ROUTED_HOST = "shop.example.com";

/**
 * Starts the Worker with `bindings` (vars and secrets). `persistDir` keeps KV/DO state across
 * instances. `routedTo`: the Worker runs on a Cloudflare route of https://shop.example.com in
 * front of that origin: requests reach it with their URL on the shop's hostname, and a fetch
 * of that URL goes to the origin (everything else the Worker fetches goes where it says).
 */
export async function startWorker({ bindings = {}, persistDir, collectLimit = 120, shopLimit = 100_000, sessions = true, routedTo } = {}) {
  const logs = []; // every line the Worker logged, for tests that check what logs may contain
  const mf = new Miniflare({
    handleStructuredLogs: ({ message, level }) => {
      logs.push(message);
      if (process.env.WORKER_LOGS) process.stderr.write(`[worker ${level}] ${message}\n`);
    },
    modules: true,
    scriptPath: path.join(ROOT, "src/entry.js"),
    modulesRoot: ROOT,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: COMPATIBILITY_DATE,
    kvNamespaces: sessions ? ["SESSIONS"] : [], // false: a wrangler.toml without the binding
    durableObjects: {
      EVENT_QUEUE: { className: "EventQueue", useSQLite: true },
      SHOP_STATE: { className: "ShopState", useSQLite: true },
    },
    ratelimits: {
      COLLECT_RATE_LIMITER: { namespace_id: "1001", simple: { limit: collectLimit, period: RATE_PERIOD_S } },
      SHOP_RATE_LIMITER: { namespace_id: "1002", simple: { limit: shopLimit, period: RATE_PERIOD_S } },
    },
    kvPersist: persistDir ? path.join(persistDir, "kv") : false,
    durableObjectsPersist: persistDir ? path.join(persistDir, "do") : false,
    bindings,
    ...(routedTo ? {
      upstream: `https://${ROUTED_HOST}`,
      outboundService: (request) => {
        const url = new URL(request.url);
        if (url.hostname !== ROUTED_HOST) return fetch(request);
        return fetch(`${routedTo}${url.pathname}${url.search}`, { method: request.method, headers: request.headers, body: request.body, redirect: "manual", duplex: "half" });
      },
    } : {}),
  });
  const base = await mf.ready;
  return {
    mf,
    logs,
    url: base.toString().replace(/\/$/, ""),
    /**
     * Real HTTP to the Worker's socket (Miniflare's dispatchFetch buffers response bodies, which
     * would hide streaming). Redirects are never followed, so tests see what the Worker answered.
     */
    fetch: (pathOrUrl, init = {}) => fetch(new URL(pathOrUrl, base), { redirect: "manual", ...init }),
    dispose: () => mf.dispose(),
  };
}

/**
 * Resolves once `check()` returns a truthy value (which it returns), re-checking every 20 ms;
 * rejects after `timeoutMs` with `what` in the message. For outcomes produced asynchronously
 * (alarms, retries): the test waits for the outcome itself, never for a fixed time.
 */
export async function waitFor(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs `steps` (which count calls against the rate limiters) within one limiter window.
 * Miniflare's limiters, like Cloudflare's, count per fixed window of the wall clock, so a run
 * that straddles a window's end finds its counters zeroed halfway. When less than `needMs` is
 * left of the current window, the run starts as the next one begins: the wait is for a known
 * instant of the clock, not for something to happen.
 */
export async function inOneRateWindow(steps, needMs = 10_000) {
  const periodMs = RATE_PERIOD_S * 1000;
  const left = periodMs - (Date.now() % periodMs);
  if (left < needMs) await new Promise((resolve) => setTimeout(resolve, left + 1));
  const start = Math.floor(Date.now() / periodMs);
  try {
    return await steps();
  } catch (error) {
    if (Math.floor(Date.now() / periodMs) === start) throw error;
    throw new Error(`the run outlasted its rate-limit window (over ${needMs} ms): ${error.message}`, { cause: error });
  }
}

export const ADMIN_TOKEN = "test-admin-token-0123456789";
/** The shop every test Worker serves (SHOPIFY_SHOP_DOMAIN) and whose webhooks it takes. */
export const SHOP_DOMAIN = "demo.myshopify.com";
export const PIXEL_ID = "C9Q2MJ3C77U4P674RPG0";
const SHOP_PAGE = "<!doctype html><html><head><title>Shop</title></head><body>shop</body></html>";

/** Settings of a live Worker in front of `originUrl`, sending to `tiktokUrl`, fast retries, admin on. */
export const shopBindings = (originUrl, tiktokUrl) => ({
  ORIGIN_URL: originUrl,
  TIKTOK_PIXEL_ID: PIXEL_ID,
  TIKTOK_ACCESS_TOKEN: "tok-test",
  TIKTOK_API_BASE: tiktokUrl,
  SHOPIFY_WEBHOOK_SECRET: WEBHOOK_SECRET,
  SHOPIFY_SHOP_DOMAIN: SHOP_DOMAIN,
  RETRY_BASE_MS: "50",
  ADMIN_TOKEN,
});

/** Every event a played TikTok (a startServer) received, in order. */
export const eventsAt = (tiktok) => tiktok.requests.flatMap((r) => JSON.parse(r.body).data);

/**
 * The Worker between a played shop origin and a played TikTok (`origin` and `tiktok` are request
 * handlers), live (access token set), with fast retries and the admin enabled. `bindings`
 * override or add settings; the other options go to startWorker.
 */
export async function startShop({ origin: onOrigin, tiktok: onTikTok, bindings = {}, ...options } = {}) {
  const origin = await startServer(onOrigin ?? ((req, res) => res.writeHead(200, { "content-type": "text/html" }).end(SHOP_PAGE)));
  const tiktok = await startServer(onTikTok ?? ((req, res) => res.writeHead(200).end(tiktokAnswer(0))));
  const worker = await startWorker({ ...options, bindings: { ...shopBindings(origin.url, tiktok.url), ...bindings } });
  return {
    worker, origin, tiktok,
    sentEvents: () => eventsAt(tiktok),
    close: async () => { await worker.dispose(); await Promise.all([origin.close(), tiktok.close()]); },
  };
}

/** The operator's JSON view (needs ADMIN_TOKEN in the Worker's bindings). */
export async function adminJson(worker) {
  const res = await worker.fetch("/tt/admin.json", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.status !== 200) throw new Error(`admin.json answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** How many events named `event` are in `state` according to the admin view. */
export function countOf(admin, event, state) {
  return admin.queue.counts.filter((c) => c.event === event && c.state === state).reduce((n, c) => n + c.count, 0);
}

/**
 * The queue shard (0..15) holding an event's key, as `queue::shard_name` computes it (FNV-1a of
 * "event:event_id"): public knowledge, which is how a forger aims at one shard.
 */
export function queueShard(event, eventId) {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(`${event}:${eventId}`)) {
    hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return Number(hash % 16n);
}

/** TikTok's success envelope, and an error one. */
export const tiktokAnswer = (code, message = code === 0 ? "OK" : "error") =>
  JSON.stringify({ code, message, request_id: "202611250000000000", data: {} });

// Shopify ids exceed 2^53, which JavaScript numbers cannot hold. Fixtures are read with big
// integers kept as "__BIG__<digits>" strings and written back as bare JSON numbers, so the
// Worker receives them exactly as Shopify sends them. `big("…")` makes such an id in a test.
const BIG = /"__BIG__(\d+)"/g;
export const big = (digits) => `__BIG__${digits}`;
export function loadFixture(name, dir = path.join(ROOT, "tests/fixtures/shopify")) {
  const text = readFileSync(path.join(dir, name), "utf8");
  return JSON.parse(text.replace(/(:\s*|\[\s*|,\s*)(\d{16,})(?=\s*[,}\]])/g, '$1"__BIG__$2"'));
}
export const toJson = (value) => JSON.stringify(value).replace(BIG, "$1");

// Shopify's side of a webhook delivery: HMAC-SHA256 of the raw body, base64, with the topic
// and a webhook id (Shopify's dedup key) in headers.
export const WEBHOOK_SECRET = "whsec-test-current";
let webhookSeq = 0;
export const signWebhook = (body, secret = WEBHOOK_SECRET) => createHmac("sha256", secret).update(body).digest("base64");

/**
 * Delivers `payload` (object or raw string) as webhook `topic` from `shop`; `hmac: null` sends none.
 * `alone`: on a connection of its own, closed after the answer. For a body the Worker refuses
 * before reading it (413), the runtime closes the connection while the body is still coming,
 * and a pooled connection could carry the next request into that close.
 */
export async function deliverWebhook(worker, topic, payload, { webhookId = `wh-${++webhookSeq}`, secret = WEBHOOK_SECRET, hmac, shop = SHOP_DOMAIN, alone = false } = {}) {
  const body = typeof payload === "string" || payload instanceof Uint8Array ? payload : toJson(payload);
  const headers = {
    "content-type": "application/json",
    "x-shopify-topic": topic,
    "x-shopify-webhook-id": webhookId,
    "x-shopify-shop-domain": shop,
    ...(hmac === null ? {} : { "x-shopify-hmac-sha256": hmac ?? signWebhook(body, secret) }),
  };
  const { status, text } = alone
    ? await postAlone(new URL("/tt/webhooks/shopify", worker.url), headers, body)
    : await worker.fetch("/tt/webhooks/shopify", { method: "POST", headers, body }).then(async (res) => ({ status: res.status, text: await res.text() }));
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status, body: json };
}

/** A POST on a connection used for nothing else (`agent: false`); the answer as status and text. */
function postAlone(url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { ...headers, connection: "close" }, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    // The runtime may close the connection before the whole body is written: the answer counts.
    req.on("error", reject);
    req.end(body);
  });
}

/** The value a response's Set-Cookie gives cookie `name` (undefined when not set). */
export const setCookieValue = (res, name) =>
  res.headers.getSetCookie().map((c) => c.split(";")[0]).find((c) => c.startsWith(`${name}=`))?.slice(name.length + 1);
/** The whole Set-Cookie line for `name`. */
export const setCookieLine = (res, name) => res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));

/** A browser's cookies: sends them, and takes what each answer sets (Max-Age=0 deletes). */
export function cookieJar(initial = {}) {
  const cookies = new Map(Object.entries(initial));
  return {
    get: (name) => cookies.get(name),
    header: () => [...cookies].map(([k, v]) => `${k}=${v}`).join("; "),
    take(res) {
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(";");
        const name = pair.slice(0, pair.indexOf("="));
        if (/Max-Age=0(;|$)/.test(line)) cookies.delete(name);
        else cookies.set(name, pair.slice(name.length + 1));
      }
    },
  };
}

/** POSTs `body` (an object, or a raw string or bytes) to /tt/collect as a page would, with `headers` added. */
export const postCollect = (worker, body, headers = {}) => worker.fetch("/tt/collect", {
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
});

/**
 * Every event `shop` (a startShop) has sent to TikTok so far, once a sentinel ViewContent posted
 * after everything else reached TikTok too: every event due before it has been sent, so counts
 * are final. The sentinel itself is left out.
 */
export async function settled(shop) {
  const id = `vc:barrier-${Math.random().toString(36).slice(2)}`;
  await postCollect(shop.worker, { event: "ViewContent", event_id: id }, { cookie: "_ttp=01JY68BARRIERBARRIERBARRIER_.tt.1" });
  await waitFor("the barrier event at TikTok", () => shop.sentEvents().some((e) => e.event_id === id));
  return shop.sentEvents().filter((e) => !e.event_id.startsWith("vc:barrier-"));
}
