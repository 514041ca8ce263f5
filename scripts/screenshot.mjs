#!/usr/bin/env node
// `npm run screenshot`: the picture of the admin page in README (docs/images/admin.png), made from
// the real demo so it stays current. The built Worker (build/index.js; `bash scripts/build.sh
// release` first) runs in workerd through Miniflare in front of the demo storefront
// (demo/origin.mjs) with the demo's own settings (.dev.vars.example: dry run, no TikTok account).
// Headless Chromium browses it as a shopper (a product view, two adds to cart, the demo checkout,
// which sends signed checkouts/create and orders/create webhooks), then signs in to /tt/admin with
// the demo's ADMIN_TOKEN and saves the page as a PNG. TikTok's SDK is played by a local server, so
// nothing leaves the machine. SCREENSHOT_OUT writes the PNG elsewhere (the docs test does).
import { readFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { ROOT, startServer, startWorker, waitFor } from "../tests/support/harness.mjs";
import { launchChromium } from "../tests/support/browser.mjs";
import { startDemoOrigin } from "../demo/origin.mjs";

const OUT = path.resolve(ROOT, process.env.SCREENSHOT_OUT || "docs/images/admin.png");

/** The demo's settings: the KEY=value lines of .dev.vars.example (scripts/dev.sh copies it to .dev.vars). */
function demoSettings() {
  const settings = {};
  for (const line of readFileSync(path.join(ROOT, ".dev.vars.example"), "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m && m[2] !== "") settings[m[1]] = m[2];
  }
  return settings;
}

const settings = demoSettings();
const sdk = await startServer((req, res) => res.writeHead(200, { "content-type": "application/javascript" }).end("/* TikTok's SDK, played */"));
const demo = await startDemoOrigin({ webhookSecret: settings.SHOPIFY_WEBHOOK_SECRET });
const worker = await startWorker({ bindings: { ...settings, ORIGIN_URL: demo.url, TIKTOK_SDK_URL: `${sdk.url}/events.js` } });
demo.workerUrl = worker.url; // the demo checkout sends its webhooks here
const chromium = await launchChromium();
try {
  const context = await chromium.newContext({ viewport: { width: 1000, height: 1300 } });
  const page = await context.newPage();

  // A shopper: a product page, two adds to cart (fetch and XHR themes), the demo checkout.
  for (const product of ["demo-mug", "demo-cap"]) {
    await page.goto(`${worker.url}/products/${product}`);
    await page.click("#add-to-cart");
    await page.waitForSelector("text=Added (1)");
  }
  await page.goto(`${worker.url}/cart`);
  await Promise.all([page.waitForSelector("#order"), page.click("#checkout")]);
  const orderId = await page.getAttribute("#order", "data-order-id");

  // The operator: signs in with the token (a session cookie, never the token in a URL) and
  // waits until the page lists the order's purchase.
  await page.goto(`${worker.url}/tt/admin`);
  await page.fill("input[name=token]", settings.ADMIN_TOKEN);
  await Promise.all([page.waitForURL(`${worker.url}/tt/admin`), page.click("button[type=submit]")]);
  await waitFor("the purchase on the admin page", async () => {
    await page.reload();
    return (await page.content()).includes(orderId);
  });
  mkdirSync(path.dirname(OUT), { recursive: true });
  // The top of the page (status, counts, chart, match keys, recent events): small enough for README.
  await page.screenshot({ path: OUT, clip: { x: 0, y: 0, width: 1000, height: 1300 } });
  console.log(`screenshot: ${path.relative(process.cwd(), OUT) || OUT} (order ${orderId})`);
} finally {
  await chromium.close();
  await worker.dispose();
  await demo.close();
  await sdk.close();
}
