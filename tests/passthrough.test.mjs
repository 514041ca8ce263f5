// Passthrough: everything outside /tt reaches the Shopify origin as sent and comes back as answered.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { startServer, startWorker } from "./support/harness.mjs";

let origin, worker;
let onRequest = (req, res) => res.end("ok");

before(async () => {
  origin = await startServer((req, res, raw) => onRequest(req, res, raw));
  worker = await startWorker({ bindings: { ORIGIN_URL: origin.url } });
});
after(async () => {
  await worker?.dispose();
  await origin?.close();
});

test("method, path, query, headers and body reach the origin unchanged", async () => {
  const body = randomBytes(256 * 1024);
  onRequest = (req, res) => res.writeHead(201, { "content-type": "application/octet-stream" }).end(req.body);
  for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
    const before = origin.requests.length;
    const res = await worker.fetch("/cart/add.js?id=42&quantity=2", {
      method,
      headers: { "x-shop-test": "kept", "content-type": "application/octet-stream" },
      body,
    });
    assert.equal(res.status, 201);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body), `${method} echo body`);
    const seen = origin.requests[before];
    assert.equal(seen.method, method);
    assert.equal(seen.url, "/cart/add.js?id=42&quantity=2");
    assert.equal(seen.headers["x-shop-test"], "kept");
    assert.ok(seen.body.equals(body), `${method} body at origin`);
  }
});

test("status, headers and every Set-Cookie line come back intact", async () => {
  onRequest = (req, res) => {
    res.setHeader("set-cookie", ["cart=c1-abc%3Fkey%3Dsecret; Path=/; HttpOnly", "cart_ts=1700000000; Path=/", "localization=US; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT"]);
    res.setHeader("x-origin", "shopify");
    res.setHeader("cache-control", "private, max-age=0");
    res.writeHead(418).end("teapot");
  };
  const res = await worker.fetch("/products/mug");
  assert.equal(res.status, 418);
  assert.equal(await res.text(), "teapot");
  assert.equal(res.headers.get("x-origin"), "shopify");
  assert.equal(res.headers.get("cache-control"), "private, max-age=0");
  assert.deepEqual(res.headers.getSetCookie(), [
    "cart=c1-abc%3Fkey%3Dsecret; Path=/; HttpOnly",
    "cart_ts=1700000000; Path=/",
    "localization=US; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
  ]);
});

test("redirects are returned to the browser, not followed", async () => {
  onRequest = (req, res) => {
    if (req.url === "/account") return res.writeHead(302, { location: "/account/login", "set-cookie": "a=1; Path=/" }).end();
    res.end("followed");
  };
  const before = origin.requests.length;
  const res = await worker.fetch("/account");
  assert.equal(res.status, 302);
  assert.equal(res.headers.get("location"), "/account/login");
  assert.deepEqual(res.headers.getSetCookie(), ["a=1; Path=/"]);
  assert.equal(origin.requests.length, before + 1, "the redirect target was not fetched");
});

test("error statuses from the origin pass through", async () => {
  for (const status of [404, 500, 503]) {
    onRequest = (req, res) => res.writeHead(status).end(`status ${status}`);
    const res = await worker.fetch("/missing");
    assert.equal(res.status, status);
    assert.equal(await res.text(), `status ${status}`);
  }
});

test("the response body streams: the first bytes arrive before the origin has finished", async () => {
  let finish;
  const released = new Promise((r) => (finish = r));
  onRequest = async (req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first-chunk;");
    await released; // the origin holds the rest until the test has seen the first chunk
    res.end("rest");
  };
  // identity: compression (which the runtime applies for gzip-capable clients) holds back small chunks.
  const res = await worker.fetch("/slow", { headers: { "accept-encoding": "identity" } });
  const reader = res.body.getReader();
  const { value } = await reader.read();
  assert.equal(Buffer.from(value).toString(), "first-chunk;");
  finish();
  let rest = "";
  for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
  assert.equal(rest, "rest");
});

test("the request body streams: the origin sees the first bytes before the browser has finished", async () => {
  let firstSeen;
  const originGotFirst = new Promise((r) => (firstSeen = r));
  let received = "";
  // A raw origin that reads the body as it comes (the recording server waits for the end).
  const raw = http.createServer((req, res) => {
    req.on("data", (c) => { received += c; firstSeen(); });
    req.on("end", () => res.end(received));
  });
  await new Promise((r) => raw.listen(0, "127.0.0.1", r));
  const streamingWorker = await startWorker({ bindings: { ORIGIN_URL: `http://127.0.0.1:${raw.address().port}` } });
  try {
    let push;
    const body = new ReadableStream({ start(c) { push = c; } });
    push.enqueue(new TextEncoder().encode("part-one;"));
    const pending = streamingWorker.fetch("/upload", { method: "POST", body, duplex: "half" });
    await originGotFirst; // would never resolve if the Worker buffered the whole body first
    assert.equal(received, "part-one;");
    push.enqueue(new TextEncoder().encode("part-two"));
    push.close();
    const res = await pending;
    assert.equal(await res.text(), "part-one;part-two");
  } finally {
    await streamingWorker.dispose();
    raw.closeAllConnections();
    await new Promise((r) => raw.close(r));
  }
});

test("an unreachable origin gives a 502 JSON error, not a crash", async () => {
  const dead = await startServer(() => {});
  await dead.close();
  const w = await startWorker({ bindings: { ORIGIN_URL: dead.url } });
  try {
    const res = await w.fetch("/");
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error, "origin_unreachable");
  } finally {
    await w.dispose();
  }
});
