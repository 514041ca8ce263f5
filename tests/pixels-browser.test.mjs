// Several pixels in Chromium: on each hostname the storefront script loads the pixels serving
// its market and tracks through ttq.instance(id), one call per matching pixel and none to another
// market's. The demo storefront, TikTok's SDK and API are played; the Worker is the build.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "./support/harness.mjs";
import { startStorefront } from "./support/browser.mjs";

// TikTok's events.js stand-in: takes over window.ttq once (one script per pixel is loaded),
// replaying what the stub and each pixel's instance queued; every call lands in
// window.__ttqCalls as [method, ...args] or ["instance", id, method, ...args].
const SDK_STUB = `(function () {
  if (window.__ttqCalls) return;
  var stub = window.ttq, calls = (window.__ttqCalls = []), sdk = {};
  for (var i = 0; i < stub.length; i++) calls.push(stub[i]);
  Object.keys(stub._i || {}).forEach(function (id) {
    calls.push(["instance", id, "load"]);
    for (var j = 0; j < stub._i[id].length; j++) calls.push(["instance", id].concat(stub._i[id][j]));
  });
  stub.methods.forEach(function (m) { sdk[m] = function () { calls.push([m].concat([].slice.call(arguments))); }; });
  sdk.instance = function (id) {
    var one = {};
    stub.methods.forEach(function (m) { one[m] = function () { calls.push(["instance", id, m].concat([].slice.call(arguments))); }; });
    return one;
  };
  window.ttq = sdk;
})();`;

let storefront, chromium, tiktok, worker;

before(async () => {
  storefront = await startStorefront(SDK_STUB);
  ({ chromium, tiktok } = storefront);
  worker = await storefront.worker({
    TIKTOK_PIXEL_ID: "",
    TIKTOK_PIXELS: JSON.stringify([{ id: "CALLPIXEL1" }, { id: "CALLPIXEL2" }, { id: "CFRPIXEL01", markets: ["fr"] }]),
    STOREFRONT_HOSTS: "127.0.0.1, localhost=fr",
  });
  storefront.demo.workerUrl = worker.url;
});
after(async () => {
  await worker?.dispose();
  await storefront?.close();
});

/** The ttq calls of a product page viewed on `host`, once its ViewContent was tracked. */
async function productPage(host) {
  const context = await chromium.newContext();
  const page = await context.newPage();
  const port = new URL(worker.url).port;
  await page.goto(`http://${host}:${port}/products/demo-mug`);
  const calls = () => page.evaluate(() => window.__ttqCalls || []);
  await waitFor(`ViewContent tracked on ${host}`, async () => (await calls()).some((c) => c[0] === "instance" && c[2] === "track"));
  const all = await calls();
  await context.close();
  return all;
}

const trackedBy = (calls) => calls.filter((c) => c[0] === "instance" && c[2] === "track").map((c) => [c[1], c[3]]);

test("the storefront script makes one ttq.instance(id) call per matching pixel and none to another market's", async () => {
  const fr = await productPage("localhost");
  assert.deepEqual(trackedBy(fr), [["CFRPIXEL01", "ViewContent"]]);
  assert.ok(!fr.some((c) => c[0] === "track"), "no plain ttq.track: it would report to every pixel");
  assert.deepEqual(fr.filter((c) => c[2] === "load").map((c) => c[1]), ["CFRPIXEL01"], "only the fr pixel is loaded");

  const other = await productPage("127.0.0.1");
  assert.deepEqual(trackedBy(other).sort(), [["CALLPIXEL1", "ViewContent"], ["CALLPIXEL2", "ViewContent"]]);
  assert.ok(!other.some((c) => c[1] === "CFRPIXEL01"), "nothing to the fr pixel");
  assert.ok(!other.some((c) => c[0] === "track"));

  // The server copies go to the same pixels.
  const sent = () => tiktok.requests.map((r) => JSON.parse(r.body)).flatMap((b) => b.data.map((e) => [b.event_source_id, e.event, e.properties.market_handle]));
  await waitFor("three server copies", () => sent().length >= 3);
  assert.deepEqual(sent().sort(), [["CALLPIXEL1", "ViewContent", "us"], ["CALLPIXEL2", "ViewContent", "us"], ["CFRPIXEL01", "ViewContent", "fr"]]);
});
