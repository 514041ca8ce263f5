// The benchmark report: wasm size, passthrough overhead against a plain JavaScript Worker, a
// page's cost with 1, 3 and 10 pixels, and Shopify webhook ingest, all against the built release Worker (build/) in workerd through
// Miniflare, over real HTTP on 127.0.0.1; native micro-benchmark figures are read from the
// output of `cargo bench -p tiktok-edge-core --bench core`. Prints one table with the budgets.
//
//   node bench/run.mjs [--native <cargo bench output>] [--native-o3 <cargo bench output>]
//
// scripts/bench.sh builds, runs the native benchmarks and then this. Budgets that fail are
// printed as FAIL; the exit code is 0 all the same (this is a report, not a gate), unless a
// measurement itself could not be made.
import { readFileSync, readdirSync, existsSync, statSync } from "node:fs";
import { createHash, createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { startServer, startWorker, waitFor, loadFixture, toJson, big, tiktokAnswer, ROOT } from "../tests/support/harness.mjs";
import { DEFAULT_WASM, profile, report as sizeReport } from "./wasm-size.mjs";
import { sections } from "../scripts/lib/wasm.mjs";
import { rowsBench } from "./rows.mjs";

// Every timing budget is a ratio of two figures measured side by side in this run, so it
// holds on a slower or busier machine: the Rust Worker against the plain JavaScript Worker
// (the floor), the stalled-TikTok acknowledgement against the fast-TikTok control, the native
// order against a reference computation in the same process. Bytes and rows are counts.
const BUDGETS = {
  wasmGzipBytes: 400_000, // decimal kilobytes; the ceiling for this round of issues (issue 26)
  assetRatio: 1.1, // p50, Rust / JS floor
  htmlRatio: 1.15, // p50, returning visitor, pixel tag injected
  newVisitorRatio: 1.25, // p50, `_ttp` minted, session written to KV after the response
  ackRatio: 1.2, // p99 ack, TikTok stalled / TikTok fast
  orderRatio: 1.5, // native 10-line order / the same body through serde_json::Value and back
  rowsFlat: 0.1, // rows per enqueue and per flushed event at 10k and 100k retained vs none
};
const PASSTHROUGH = { warmUp: 50, rounds: 400 };
const WEBHOOKS = { warmUp: 10, perCase: 150, concurrency: 4, lineCounts: [1, 10, 100] };
const SLOW_SINK = { delayMs: 10_000, deliveries: 100 };
const COLD_START = { rounds: 10 };
const PIXEL_PAGES = { warmUp: 20, rounds: 150, counts: [1, 3, 10] };
const SECRET = "whsec-bench";
const PIXEL_ID = "C9Q2MJ3C77U4P674RPG0";
const COMPATIBILITY_DATE = "2026-07-01"; // as tests/support/harness.mjs and wrangler.toml

// --- statistics ---------------------------------------------------------------------------

/** Nearest-rank percentile of `samples` (p in 0..1). */
function percentile(samples, p) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}
const summary = (samples) => ({ n: samples.length, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), max: Math.max(...samples) });

/** Milliseconds from sending `request()` to having read the whole response body. */
async function timed(request) {
  const start = performance.now();
  const res = await request();
  const body = Buffer.from(await res.arrayBuffer());
  return { ms: performance.now() - start, res, body };
}

// --- passthrough --------------------------------------------------------------------------

const ASSET = Buffer.from(`/* bench asset */\n${".product-card{display:grid;gap:8px}\n".repeat(30)}`);

/** A storefront page of about `bytes` with a real <head>, as Shopify themes send it. */
function htmlPage(bytes) {
  const head = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo Mug</title>` +
    `<link rel="stylesheet" href="/assets/app.css"><script src="/assets/theme.js" defer></script></head><body>`;
  const card = `<div class="product-card"><a href="/products/demo-mug"><img src="/cdn/mug.jpg" alt="Demo Mug" width="300" height="300"></a><p class="price">€17,00</p></div>\n`;
  return Buffer.from(head + card.repeat(Math.ceil((bytes - head.length) / card.length)) + "</body></html>");
}
const HTML = htmlPage(100 * 1024);

export async function passthroughBench() {
  const origin = await startServer((req, res) => {
    if (req.url.startsWith("/assets/")) {
      res.writeHead(200, { "content-type": "text/css", "cache-control": "public, max-age=31536000" }).end(ASSET);
    } else {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "private, no-store" }).end(HTML);
    }
  });
  const rust = await startWorker({ bindings: { ORIGIN_URL: origin.url, TIKTOK_PIXEL_ID: PIXEL_ID } });
  const jsMf = new Miniflare({
    modules: true,
    scriptPath: path.join(ROOT, "bench/js-passthrough.mjs"),
    compatibilityDate: COMPATIBILITY_DATE,
    bindings: { ORIGIN: origin.url },
  });
  const jsBase = await jsMf.ready;
  const js = { fetch: (p, init = {}) => fetch(new URL(p, jsBase), { redirect: "manual", ...init }) };
  const browser = { "user-agent": "Mozilla/5.0 (bench) Safari/604.1", accept: "text/html,*/*" };
  const returning = { ...browser, cookie: "_ttp=01JY68AFXQXP2232M0V748XS0P_.tt.1; _tt_s=1; localization=US" };
  const cases = [
    { name: "asset", label: `small asset (${ASSET.length} B CSS)`, path: "/assets/app.css", headers: returning, budget: BUDGETS.assetRatio },
    { name: "html", label: `HTML ${Math.round(HTML.length / 1024)} KB, returning visitor`, path: "/products/demo-mug", headers: returning, budget: BUDGETS.htmlRatio },
    { name: "html-new", label: `HTML ${Math.round(HTML.length / 1024)} KB, new visitor (_ttp minted; the session waits for the cookie to come back)`, path: "/products/demo-mug?utm_source=bench", headers: browser, budget: BUDGETS.newVisitorRatio },
    // Profile of a first visit's parts: an ad click writes the session to KV at once.
    { name: "html-click", label: `HTML ${Math.round(HTML.length / 1024)} KB, new visitor from an ad click (_ttp and ttclid minted, session written to KV)`, path: "/products/demo-mug?ttclid=E.C.P.bench", headers: browser },
  ];
  const results = [];
  try {
    for (const c of cases) {
      const get = (w) => () => w.fetch(c.path, { headers: c.headers });
      // What is timed must be the real path: check both answers once before timing.
      const r = await timed(get(rust));
      const j = await timed(get(js));
      if (r.res.status !== 200 || j.res.status !== 200) throw new Error(`passthrough ${c.name}: Rust answered ${r.res.status}, JS ${j.res.status}`);
      if (!j.body.equals(c.name === "asset" ? ASSET : HTML)) throw new Error(`passthrough ${c.name}: the JS baseline changed the body`);
      const setCookies = r.res.headers.getSetCookie();
      const injected = r.body.includes("/tt/pixel.js");
      if (c.name === "asset" && (!r.body.equals(ASSET) || setCookies.length)) throw new Error("passthrough asset: the Rust Worker changed the asset or set cookies on it");
      if (c.name !== "asset" && !setCookies.some((s) => s.startsWith("_ttp="))) throw new Error(`passthrough ${c.name}: the Rust Worker set no _ttp cookie on an HTML page`);
      for (let i = 0; i < PASSTHROUGH.warmUp; i++) {
        await timed(get(rust));
        await timed(get(js));
      }
      const samples = { rust: [], js: [] };
      // Alternating which goes first (ABBA) cancels drift and any first-of-pair advantage.
      for (let i = 0; i < PASSTHROUGH.rounds; i++) {
        const order = i % 2 === 0 ? ["rust", "js"] : ["js", "rust"];
        for (const who of order) samples[who].push((await timed(get(who === "rust" ? rust : js))).ms);
      }
      const rs = summary(samples.rust);
      const js_ = summary(samples.js);
      results.push({ ...c, rust: rs, js: js_, ratioP50: rs.p50 / js_.p50, ratioP99: rs.p99 / js_.p99, injected, setCookies: setCookies.length });
    }
  } finally {
    await rust.dispose();
    await jsMf.dispose();
    await origin.close();
  }
  return results;
}

// --- a page with several pixels -------------------------------------------------------------

/**
 * What one storefront page costs the Worker with 1, 3 and 10 pixels (TIKTOK_PIXELS, all serving
 * every market): the HTML page, /tt/pixel.js, one /tt/sdk.js per pixel the page loads (each
 * pixel's SDK, cached after the first), and its ViewContent through /tt/collect (one queue row
 * per pixel; dry run, so nothing leaves). Timed as one sequence of requests, against the same
 * page through the plain JavaScript Worker (the floor: the page alone), alternating.
 */
export async function pixelPagesBench() {
  const sdkBody = "/* events.js stand-in */ window.ttq = window.ttq || [];";
  const origin = await startServer((req, res) => {
    if (req.url.startsWith("/events.js")) res.writeHead(200, { "content-type": "application/javascript", "cache-control": "public, max-age=3600" }).end(sdkBody);
    else res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "private, no-store" }).end(HTML);
  });
  const jsMf = new Miniflare({ modules: true, scriptPath: path.join(ROOT, "bench/js-passthrough.mjs"), compatibilityDate: COMPATIBILITY_DATE, bindings: { ORIGIN: origin.url } });
  const jsBase = await jsMf.ready;
  const headers = { "user-agent": "Mozilla/5.0 (bench) Safari/604.1", accept: "text/html,*/*", cookie: "_ttp=01JY68AFXQXP2232M0V748XS0P_.tt.1; _tt_s=1", "cf-connecting-ip": "203.0.113.9" };
  const floor = () => fetch(new URL("/products/demo-mug", jsBase), { headers });
  const results = [];
  let seq = 0;
  try {
    for (const n of PIXEL_PAGES.counts) {
      const ids = Array.from({ length: n }, (_, i) => `CBENCH${String(i).padStart(2, "0")}PIXEL`);
      const worker = await startWorker({
        collectLimit: 1_000_000,
        bindings: { ORIGIN_URL: origin.url, TIKTOK_SDK_URL: `${origin.url}/events.js`, TIKTOK_PIXELS: JSON.stringify(ids.map((id) => ({ id }))) },
      });
      /** The page's requests in the order a browser makes them; throws unless each is answered as expected. */
      const page = async () => {
        const start = performance.now();
        const html = await worker.fetch("/products/demo-mug", { headers });
        const body = await html.text();
        if (html.status !== 200 || !body.includes("/tt/pixel.js")) throw new Error(`pixel pages (${n}): the page answered ${html.status} without the pixel tag`);
        const script = await worker.fetch("/tt/pixel.js", { headers });
        if (!(await script.text()).includes(ids[n - 1])) throw new Error(`pixel pages (${n}): pixel.js does not carry every pixel`);
        for (const id of ids) {
          const sdk = await worker.fetch(`/tt/sdk.js?sdkid=${id}&lib=ttq`, { headers });
          if (sdk.status !== 200) throw new Error(`pixel pages (${n}): the SDK of ${id} answered ${sdk.status}`);
          await sdk.arrayBuffer();
        }
        const collect = await worker.fetch("/tt/collect", {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify({ event: "ViewContent", event_id: `vc:bench-${++seq}`, page: { url: "https://shop.example/products/demo-mug" } }),
        });
        const queued = await collect.json();
        if (collect.status !== 202 || !queued.queued) throw new Error(`pixel pages (${n}): collect answered ${collect.status} ${JSON.stringify(queued)}`);
        return performance.now() - start;
      };
      const timedFloor = async () => {
        const start = performance.now();
        await (await floor()).arrayBuffer();
        return performance.now() - start;
      };
      try {
        for (let i = 0; i < PIXEL_PAGES.warmUp; i++) {
          await page();
          await timedFloor();
        }
        const samples = { rust: [], js: [] };
        for (let i = 0; i < PIXEL_PAGES.rounds; i++) {
          const order = i % 2 === 0 ? ["rust", "js"] : ["js", "rust"];
          for (const who of order) samples[who].push(who === "rust" ? await page() : await timedFloor());
        }
        results.push({ pixels: n, requests: 3 + n, rust: summary(samples.rust), js: summary(samples.js) });
      } finally {
        await worker.dispose();
      }
    }
  } finally {
    await jsMf.dispose();
    await origin.close();
  }
  return results;
}

// --- cold start ---------------------------------------------------------------------------

/**
 * A fresh isolate's first answer to a page, for the Rust Worker and the JavaScript floor,
 * side by side (alternating which starts first): each round starts a new workerd for each,
 * times its start (until it listens) and then its first page. The wasm's size is paid here,
 * once per isolate start.
 */
export async function coldStartBench() {
  const origin = await startServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "private, no-store" }).end(HTML);
  });
  const starters = {
    rust: async () => {
      const w = await startWorker({ bindings: { ORIGIN_URL: origin.url, TIKTOK_PIXEL_ID: PIXEL_ID } });
      return { fetch: w.fetch, dispose: () => w.dispose() };
    },
    js: async () => {
      const mf = new Miniflare({ modules: true, scriptPath: path.join(ROOT, "bench/js-passthrough.mjs"), compatibilityDate: COMPATIBILITY_DATE, bindings: { ORIGIN: origin.url } });
      const base = await mf.ready;
      return { fetch: (p, init = {}) => fetch(new URL(p, base), { redirect: "manual", ...init }), dispose: () => mf.dispose() };
    },
  };
  const samples = { rust: { start: [], first: [] }, js: { start: [], first: [] } };
  const headers = { "user-agent": "Mozilla/5.0 (bench) Safari/604.1", accept: "text/html,*/*" };
  try {
    for (let i = 0; i < COLD_START.rounds; i++) {
      for (const who of i % 2 === 0 ? ["rust", "js"] : ["js", "rust"]) {
        const t0 = performance.now();
        const worker = await starters[who]();
        const listening = performance.now();
        try {
          const first = await timed(() => worker.fetch("/products/demo-mug", { headers }));
          if (first.res.status !== 200) throw new Error(`cold start ${who}: the first page answered ${first.res.status}`);
          samples[who].start.push(listening - t0);
          samples[who].first.push(first.ms);
        } finally {
          await worker.dispose();
        }
      }
    }
  } finally {
    await origin.close();
  }
  const of = (who) => ({ start: summary(samples[who].start), first: summary(samples[who].first) });
  return { rust: of("rust"), js: of("js") };
}

// --- webhooks -----------------------------------------------------------------------------

let orderSeq = 0;

/** A signed orders/create delivery: unique order id, webhook id and browsing session, `lines` line items. */
function orderDelivery(lines) {
  const seq = ++orderSeq;
  const order = loadFixture("order_create.json");
  const sid = `01JYBENCH${String(seq).padStart(17, "0")}_.tt.1`;
  const orderId = `59${String(seq).padStart(17, "0")}`;
  order.id = big(orderId);
  order.admin_graphql_api_id = `gid://shopify/Order/${orderId}`;
  order.cart_token = `c1-bench-${seq}`;
  order.checkout_token = `chk-bench-${seq}`;
  order.note_attributes = order.note_attributes.map((a) => (a.name === "_tt_sid" || a.name === "_ttp" ? { ...a, value: sid } : a));
  const template = order.line_items[0];
  order.line_items = Array.from({ length: lines }, (_, i) => ({
    ...template,
    id: big(String(14000000000000000001n + BigInt(i))),
    variant_id: big(String(42001234567890123n + BigInt(i))),
    product_id: 7001234567890 + i,
    quantity: 1 + (i % 3),
  }));
  const body = toJson(order);
  return {
    sid,
    orderId,
    body,
    headers: {
      "content-type": "application/json",
      "x-shopify-topic": "orders/create",
      "x-shopify-webhook-id": `bench-webhook-${seq}`,
      "x-shopify-shop-domain": "bench.myshopify.com",
      "x-shopify-hmac-sha256": createHmac("sha256", SECRET).update(body).digest("base64"),
    },
  };
}

/** The browsing session the edge would have stored for `sid`, so every webhook's KV join hits. */
const storedSession = (sid) => JSON.stringify({ ttp: sid, ttclid: "E.C.P.bench", ip: "203.0.113.50", user_agent: "BenchBrowser/1.0", landing_url: "https://shop.example/?ttclid=E.C.P.bench" });

/** A TikTok Events API played locally: answers success after `delayMs`, counts what is in flight. */
async function startSink(delayMs) {
  const timers = new Set();
  const sink = { answered: 0, events: 0, arrivals: new Map() };
  const server = await startServer(async (req, res) => {
    const arrivedMs = performance.now();
    for (const e of JSON.parse(req.body).data) if (!sink.arrivals.has(e.event_id)) sink.arrivals.set(e.event_id, arrivedMs);
    await new Promise((resolve) => {
      const t = setTimeout(() => { timers.delete(t); resolve(); }, delayMs);
      timers.add(t);
    });
    sink.events += JSON.parse(req.body).data.length;
    sink.answered++;
    res.writeHead(200, { "content-type": "application/json" }).end(tiktokAnswer(0));
  });
  return Object.assign(sink, {
    url: server.url,
    inFlight: () => server.requests.length - sink.answered,
    calls: () => server.requests.length,
    close: async () => { for (const t of timers) clearTimeout(t); await server.close(); },
  });
}

async function webhookWorker(sink) {
  const worker = await startWorker({
    bindings: {
      TIKTOK_PIXEL_ID: PIXEL_ID,
      TIKTOK_ACCESS_TOKEN: "tok-bench",
      TIKTOK_API_BASE: sink.url,
      TIKTOK_TIMEOUT_MS: "15000",
      SHOPIFY_WEBHOOK_SECRET: SECRET,
      SHOPIFY_SHOP_DOMAIN: "bench.myshopify.com",
    },
  });
  const kv = await worker.mf.getKVNamespace("SESSIONS");
  /** Delivers `deliveries` (sessions stored first), `concurrency` at a time; latencies in ms. */
  async function deliver(deliveries, concurrency) {
    await Promise.all(deliveries.map((d) => kv.put(`session:${d.sid}`, storedSession(d.sid))));
    const latencies = [];
    const sentAt = new Map(); // order id -> when its webhook was sent
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < deliveries.length) {
        const d = deliveries[next++];
        sentAt.set(d.orderId, performance.now());
        const { ms, res, body } = await timed(() => worker.fetch("/tt/webhooks/shopify", { method: "POST", headers: d.headers, body: d.body }));
        const answer = res.status === 200 ? JSON.parse(body) : null;
        if (answer?.queued !== 1) throw new Error(`webhook ${d.headers["x-shopify-webhook-id"]} answered ${res.status} ${body} (expected 200 with queued: 1)`);
        latencies.push(ms);
      }
    }));
    return { latencies, sentAt, seconds: (performance.now() - started) / 1000 };
  }
  return { worker, deliver };
}

async function webhookBench() {
  const throughput = [];
  let control;
  let toTikTok;
  const fast = await startSink(0);
  const { worker, deliver } = await webhookWorker(fast);
  try {
    await deliver(Array.from({ length: WEBHOOKS.warmUp }, () => orderDelivery(10)), 1);
    for (const lines of WEBHOOKS.lineCounts) {
      const deliveries = Array.from({ length: WEBHOOKS.perCase }, () => orderDelivery(lines));
      const { latencies, seconds } = await deliver(deliveries, WEBHOOKS.concurrency);
      throughput.push({ lines, bodyBytes: deliveries[0].body.length, perSecond: deliveries.length / seconds, ...summary(latencies) });
    }
    // The control for the slow-sink figure: the same sequential deliveries with a fast sink.
    const { latencies, sentAt } = await deliver(Array.from({ length: SLOW_SINK.deliveries }, () => orderDelivery(10)), 1);
    control = summary(latencies);
    // Acknowledged is not sent: check that the queue really delivered every purchase.
    const expected = WEBHOOKS.warmUp + WEBHOOKS.perCase * WEBHOOKS.lineCounts.length + SLOW_SINK.deliveries;
    await waitFor(`${expected} purchases at the local TikTok sink`, () => fast.events >= expected, 60_000);
    // Accept -> TikTok: from sending the webhook to the purchase's arrival at the sink (its
    // event_id is derived from the order id).
    const arrivals = [...fast.arrivals];
    toTikTok = summary([...sentAt].map(([orderId, sent]) => {
      const arrival = arrivals.find(([eventId]) => eventId.includes(orderId));
      if (!arrival) throw new Error(`order ${orderId} never reached the sink`);
      return arrival[1] - sent;
    }));
  } finally {
    await worker.dispose();
    await fast.close();
  }

  const slow = await startSink(SLOW_SINK.delayMs);
  const slowWorker = await webhookWorker(slow);
  let slowResult;
  try {
    await slowWorker.deliver(Array.from({ length: WEBHOOKS.warmUp }, () => orderDelivery(10)), 1);
    await waitFor("a call to the slow TikTok sink in flight", () => slow.inFlight() > 0, 30_000);
    const callsBefore = slow.calls();
    let minInFlight = Infinity;
    const watch = setInterval(() => { minInFlight = Math.min(minInFlight, slow.inFlight()); }, 5);
    const { latencies } = await slowWorker.deliver(Array.from({ length: SLOW_SINK.deliveries }, () => orderDelivery(10)), 1);
    clearInterval(watch);
    slowResult = { ...summary(latencies), minInFlight, callsDuring: slow.calls() - callsBefore, answeredDuring: slow.answered };
  } finally {
    await slowWorker.worker.dispose();
    await slow.close();
  }
  return { throughput, control, toTikTok, slow: slowResult };
}

// --- native ---------------------------------------------------------------------------------

/** `bench <name> median_ns=… …` lines of crates/core/benches/core.rs, by name. */
function readNative(file) {
  if (!file) return null;
  if (!existsSync(file)) throw new Error(`${file} does not exist: run cargo bench -p tiktok-edge-core --bench core > ${file} first`);
  const figures = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^bench (\S+) (.*)$/.exec(line);
    if (m) figures[m[1]] = Object.fromEntries(m[2].split(" ").map((kv) => kv.split("=")).map(([k, v]) => [k, Number(v)]));
  }
  if (!Object.keys(figures).length) throw new Error(`${file} holds no "bench …" lines: did cargo bench fail?`);
  return figures;
}

// --- machine noise ------------------------------------------------------------------------

/**
 * Machine-wide busy CPU time and this benchmark's own (Node, plus its workerd children: live
 * ones read from /proc, exited ones already added to Node's children's time), to tell a quiet
 * run from one that competed with builds or tests. `null` where /proc is unavailable.
 */
function cpuAccount() {
  if (!existsSync("/proc/stat")) return null;
  const ticksPerSecond = 100; // USER_HZ on Linux
  const [user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const procs = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime, stime, and the time of children already waited for (cutime, cstime).
      procs.set(Number(entry), { ppid: Number(fields[1]), ticks: fields.slice(11, 15).reduce((n, f) => n + Number(f), 0) });
    } catch {
      // The process exited while being read.
    }
  }
  const ours = (pid) => {
    for (let p = pid; p > 1; p = procs.get(p)?.ppid ?? 0) if (p === process.pid) return true;
    return false;
  };
  const ownTicks = [...procs].filter(([pid]) => ours(pid)).reduce((n, [, p]) => n + p.ticks, 0);
  return {
    at: Date.now(),
    machineSeconds: (user + nice + system + irq + softirq + steal) / ticksPerSecond,
    ownSeconds: ownTicks / ticksPerSecond,
  };
}

/** Size, modification time and content hash of a file. */
function buildFingerprint(file) {
  const st = statSync(file);
  return `${st.size}:${st.mtimeMs}:${createHash("sha256").update(readFileSync(file)).digest("hex")}`;
}

/** CPU, cores, RAM, OS and the versions of everything that runs the benchmark. */
function machine() {
  const version = (pkg) => JSON.parse(readFileSync(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version;
  const osName = existsSync("/etc/os-release") ? /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] : os.type();
  const rustc = execFileSync("rustc", ["--version"], { encoding: "utf8" }).trim();
  return `${os.cpus()[0].model}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${osName} (Linux ${os.release()}), ` +
    `Node ${process.version}, ${rustc}, workerd ${version("workerd")}, miniflare ${version("miniflare")}`;
}

// --- report ---------------------------------------------------------------------------------

const ms = (x) => `${x.toFixed(2)} ms`;
const us = (ns) => `${(ns / 1000).toFixed(2)} µs`;
const bytes = (n) => `${n.toLocaleString("en")} B`;
const verdict = (ok) => (ok ? "PASS" : "FAIL  <<<");

function table(rows) {
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => String(r[i] ?? "").length)));
  const line = (r) => r.map((c, i) => String(c ?? "").padEnd(widths[i])).join("  ").trimEnd();
  return [line(["figure", "value", "budget", "result"]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

async function main() {
  const { values: args } = parseArgs({ options: { native: { type: "string" }, "native-o3": { type: "string" } } });
  const wasmFile = path.join(ROOT, "build/index_bg.wasm");
  if (!existsSync(wasmFile)) throw new Error("build/index_bg.wasm is missing: run `bash scripts/build.sh release` first");
  // Everything below runs whatever build/ holds when each Worker starts: note it, to detect
  // another build (a debug one, say) replacing it during the run.
  const buildAtStart = buildFingerprint(wasmFile);
  if (sections(readFileSync(wasmFile)).some((sec) => sec.name.startsWith(".debug"))) {
    throw new Error("build/index_bg.wasm carries DWARF debug sections, so it is not a release build: run `bash scripts/build.sh release` first");
  }
  const native = readNative(args.native);
  const nativeO3 = readNative(args["native-o3"]);

  console.log(`machine: ${machine()}`);
  const cpuAtStart = cpuAccount();
  const size = profile(wasmFile);
  // The shipped wasm has no name section; the named copy of the same build attributes bytes.
  const named = existsSync(DEFAULT_WASM) ? profile(DEFAULT_WASM) : size;
  console.log(`\n== wasm size profile\n${sizeReport(named, { topCrates: 15 })}`);
  console.log(`\n== passthrough: ${PASSTHROUGH.rounds} sequential requests per Worker after ${PASSTHROUGH.warmUp} warm-up, alternating Rust and JS`);
  const passthrough = await passthroughBench();
  for (const p of passthrough) {
    console.log(`  ${p.label}: Rust p50 ${ms(p.rust.p50)} p99 ${ms(p.rust.p99)} | JS p50 ${ms(p.js.p50)} p99 ${ms(p.js.p99)} | ratio p50 ${p.ratioP50.toFixed(2)} p99 ${p.ratioP99.toFixed(2)}` +
      (p.name === "asset" ? "" : ` | ${p.setCookies} Set-Cookie, pixel tag ${p.injected ? "injected" : "NOT injected"}`));
  }
  console.log(`\n== a page with 1, 3 and 10 pixels: its HTML, pixel.js, each pixel's SDK and its ViewContent (${PIXEL_PAGES.rounds} pages each, alternating with the page through the JS floor)`);
  const pixelPages = await pixelPagesBench();
  const onePixel = pixelPages[0].rust.p50;
  for (const p of pixelPages) {
    console.log(`  ${String(p.pixels).padStart(2)} pixels (${p.requests} requests): Rust p50 ${ms(p.rust.p50)} p99 ${ms(p.rust.p99)} | JS floor page p50 ${ms(p.js.p50)} | ` +
      `ratio p50 to 1 pixel ${(p.rust.p50 / onePixel).toFixed(2)}, to the JS floor ${(p.rust.p50 / p.js.p50).toFixed(2)}`);
  }
  console.log(`\n== cold start: ${COLD_START.rounds} fresh workerd processes per Worker, alternating; the first page of each`);
  const cold = await coldStartBench();
  for (const who of ["rust", "js"]) {
    console.log(`  ${who === "rust" ? "Rust" : "JS floor"}: start until listening p50 ${ms(cold[who].start.p50)} | first page p50 ${ms(cold[who].first.p50)} max ${ms(cold[who].first.max)}`);
  }
  console.log(`\n== webhooks: signed orders/create, ${WEBHOOKS.perCase} per case, ${WEBHOOKS.concurrency} concurrent, KV join hit, fast local TikTok sink`);
  const webhooks = await webhookBench();
  for (const t of webhooks.throughput) {
    console.log(`  ${String(t.lines).padStart(3)} lines (${bytes(t.bodyBytes)} body): ${t.perSecond.toFixed(0)}/s, ack p50 ${ms(t.p50)} p99 ${ms(t.p99)}`);
  }
  const c = webhooks.control;
  console.log(`  fast TikTok, ${c.n} sequential 10-line deliveries (control): ack p50 ${ms(c.p50)} p99 ${ms(c.p99)} max ${ms(c.max)}`);
  const l = webhooks.toTikTok;
  console.log(`  accept -> TikTok (fast TikTok), the same ${l.n} deliveries: p50 ${ms(l.p50)} p99 ${ms(l.p99)} max ${ms(l.max)}`);
  const s = webhooks.slow;
  console.log(`  slow TikTok (${SLOW_SINK.delayMs / 1000} s per call, TIKTOK_TIMEOUT_MS=15000), ${s.n} sequential 10-line deliveries: ack p50 ${ms(s.p50)} p99 ${ms(s.p99)} max ${ms(s.max)};` +
    ` sink calls in flight throughout: ≥ ${s.minInFlight}, new calls during: ${s.callsDuring}, answered by then: ${s.answeredDuring}`);
  console.log("\n== SQLite rows of one queue shard, by finished rows retained (bench/rows.mjs)");
  const rows = await rowsBench();
  for (const r of rows) {
    console.log(`  ${r.retained.toLocaleString("en")} retained (seeded in ${r.seedSeconds.toFixed(1)} s): per enqueue ${r.enqueue.read} read / ${r.enqueue.written} written; ` +
      `per flushed event ${r.flush.read.toFixed(2)} read / ${r.flush.written.toFixed(2)} written (${r.flush.flushes} flushes)`);
  }

  const html = passthrough.find((p) => p.name === "html");
  const asset = passthrough.find((p) => p.name === "asset");
  const htmlNew = passthrough.find((p) => p.name === "html-new");
  const htmlClick = passthrough.find((p) => p.name === "html-click");
  const order10 = native?.order_10_lines_parse_map_serialise;
  const reference = native?.reference_10_line_order_as_json_value;
  const ratioRow = (name, value, budget, digits = 3) => [name, value.toFixed(digits), `≤ ${budget}`, verdict(value <= budget)];
  // Rows at each level against the empty shard: flat within BUDGETS.rowsFlat.
  const [empty, ...fuller] = rows;
  const drift = (pick) => Math.max(...fuller.map((r) => Math.abs(pick(r) / pick(empty) - 1)));
  const rowsDrift = Math.max(drift((r) => r.enqueue.read), drift((r) => r.enqueue.written), drift((r) => r.flush.read), drift((r) => r.flush.written));
  const table_ = [
    ["wasm raw", bytes(size.raw)],
    ["wasm gzip (zlib level 6, as wrangler reports)", bytes(size.gzip), `≤ ${bytes(BUDGETS.wasmGzipBytes)}`, verdict(size.gzip <= BUDGETS.wasmGzipBytes)],
    ["  name section, stripped at build (gzip saved)", bytes(named.gzip - size.gzip)],
    [`passthrough asset p50 Rust / JS`, `${ms(asset.rust.p50)} / ${ms(asset.js.p50)}`],
    [`passthrough asset p99 Rust / JS`, `${ms(asset.rust.p99)} / ${ms(asset.js.p99)}`],
    ratioRow("passthrough asset p50 ratio Rust / JS", asset.ratioP50, BUDGETS.assetRatio),
    [`passthrough HTML 100 KB p50 Rust / JS`, `${ms(html.rust.p50)} / ${ms(html.js.p50)}`],
    [`passthrough HTML 100 KB p99 Rust / JS`, `${ms(html.rust.p99)} / ${ms(html.js.p99)}`],
    ratioRow(`passthrough HTML p50 ratio Rust / JS (${html.injected ? "with" : "WITHOUT"} injection)`, html.ratioP50, BUDGETS.htmlRatio),
    [`passthrough HTML new visitor p50 Rust / JS`, `${ms(htmlNew.rust.p50)} / ${ms(htmlNew.js.p50)}`],
    ratioRow("passthrough HTML new visitor p50 ratio Rust / JS", htmlNew.ratioP50, BUDGETS.newVisitorRatio),
    ["  new visitor / returning visitor, Rust p50 (info)", (htmlNew.rust.p50 / html.rust.p50).toFixed(3)],
    ["passthrough HTML ad-click visitor (session written) p50 ratio Rust / JS (info)", htmlClick.ratioP50.toFixed(3)],
    ...webhooks.throughput.map((t) => [`webhooks/s, ${t.lines}-line orders (c=${WEBHOOKS.concurrency})`, `${t.perSecond.toFixed(0)}/s (p99 ${ms(t.p99)})`]),
    ["webhook ack p50 / p99, TikTok fast, sequential", `${ms(c.p50)} / ${ms(c.p99)}`],
    ["accept -> TikTok p50 / p99 (webhook sent to purchase at TikTok, fast TikTok)", `${ms(l.p50)} / ${ms(l.p99)}`],
    ...pixelPages.map((p) => [`page with ${p.pixels} pixel${p.pixels > 1 ? "s" : ""} (${p.requests} requests) p50, ratio to 1 pixel / to the JS floor page (info)`,
      `${ms(p.rust.p50)}: ${(p.rust.p50 / onePixel).toFixed(2)} / ${(p.rust.p50 / p.js.p50).toFixed(2)}`]),
    ["cold start: first page p50 Rust / JS (fresh isolate)", `${ms(cold.rust.first.p50)} / ${ms(cold.js.first.p50)}`],
    ["cold start: first page p50 ratio Rust / JS (info)", (cold.rust.first.p50 / cold.js.first.p50).toFixed(2)],
    ["cold start: start + first page p50 ratio Rust / JS (info)", ((cold.rust.start.p50 + cold.rust.first.p50) / (cold.js.start.p50 + cold.js.first.p50)).toFixed(2)],
    ["webhook ack p50, TikTok slow (10 s/call), sequential", ms(s.p50)],
    ["webhook ack p99, TikTok slow (10 s/call), sequential", ms(s.p99)],
    ratioRow("webhook ack p99 ratio, TikTok slow / fast", s.p99 / c.p99, BUDGETS.ackRatio),
    ...rows.map((r) => [`SQLite rows per enqueue / per flushed event, ${r.retained.toLocaleString("en")} retained`,
      `${r.enqueue.read} r ${r.enqueue.written} w / ${r.flush.read.toFixed(2)} r ${r.flush.written.toFixed(2)} w`]),
    ["SQLite rows, largest change from 0 retained", `${(100 * rowsDrift).toFixed(1)} %`, `≤ ${100 * BUDGETS.rowsFlat} %`, verdict(rowsDrift <= BUDGETS.rowsFlat)],
    order10 && reference
      ? ratioRow("native: 10-line order parse+map+serialise / reference", order10.median_ns / reference.median_ns, BUDGETS.orderRatio)
      : ["native: 10-line order / reference", "not run (--native)", `≤ ${BUDGETS.orderRatio}`, "-"],
  ];
  for (const [name, f] of Object.entries(native ?? {})) table_.push([`native: ${name}`, us(f.median_ns)]);
  if (nativeO3?.order_10_lines_parse_map_serialise) {
    table_.push(["native opt-level 3: 10-line order / reference (info)",
      (nativeO3.order_10_lines_parse_map_serialise.median_ns / nativeO3.reference_10_line_order_as_json_value.median_ns).toFixed(3)]);
    table_.push(["native opt-level 3: 10-line order (info)", us(nativeO3.order_10_lines_parse_map_serialise.median_ns)]);
    table_.push(["native opt-level 3: hash_email_and_phone (info)", us(nativeO3.hash_email_and_phone.median_ns)]);
  }
  if (buildFingerprint(wasmFile) !== buildAtStart) {
    console.log("\nWARNING: build/index_bg.wasm was replaced during the run (another build wrote build/): the Worker figures are invalid; rerun.");
  }
  // Latency and throughput are only comparable between runs on an otherwise idle machine.
  const cpuAtEnd = cpuAtStart && cpuAccount();
  if (cpuAtEnd) {
    const seconds = (cpuAtEnd.at - cpuAtStart.at) / 1000;
    const others = cpuAtEnd.machineSeconds - cpuAtStart.machineSeconds - (cpuAtEnd.ownSeconds - cpuAtStart.ownSeconds);
    const share = Math.max(0, others) / (seconds * os.cpus().length);
    const note = `other processes used ${Math.max(0, others).toFixed(1)} CPU-s during the ${seconds.toFixed(0)} s run (${(100 * share).toFixed(0)}% of ${os.cpus().length} cores)`;
    console.log(`\n${share > 0.1 ? `WARNING: ${note}: latency and throughput figures are inflated; rerun on an idle machine.` : note}`);
  }
  console.log(`\n== summary (budgets: ${Object.keys(BUDGETS).length}; native figures use the release profile, opt-level "z", as shipped)\n${table(table_)}`);
}

// Run as a script (not when a profiling script imports passthroughBench).
if (import.meta.url === `file://${process.argv[1]}`) await main();
