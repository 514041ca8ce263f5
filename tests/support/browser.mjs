// Real headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by
// playwright-core (which downloads no browser of its own). Each launch starts from an empty profile.
// startStorefront: the demo shop, TikTok played, and the Worker in front, as Chromium meets them.
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { startServer, startWorker, shopBindings, tiktokAnswer, WEBHOOK_SECRET } from "./harness.mjs";
import { startDemoOrigin, SHOP_DOMAIN as DEMO_SHOP_DOMAIN } from "../../demo/origin.mjs";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Launches Chromium; throws (so the test fails, never skips) when it is not installed. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: run \`bash scripts/setup.sh\` (as root it installs Debian's chromium package; otherwise it prints the command)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * The demo storefront (demo/origin.mjs) as a browser meets it: headless Chromium, TikTok's
 * events.js played by `sdkStub` (the script a page loads), TikTok's API played (every call
 * accepted), and the demo shop. `worker(settings, options)` starts the built Worker in front of
 * the demo with the played SDK and TikTok, `settings` added (`options` go to startWorker); the
 * caller disposes it. `close()` stops the rest.
 */
export async function startStorefront(sdkStub) {
  const chromium = await launchChromium(); // first: a missing browser fails every test with the fix
  const sdk = await startServer((req, res) => res.writeHead(200, { "content-type": "application/javascript" }).end(sdkStub));
  const tiktok = await startServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(tiktokAnswer(0)));
  const demo = await startDemoOrigin({ webhookSecret: WEBHOOK_SECRET });
  return {
    chromium, sdk, tiktok, demo,
    worker: (settings = {}, options = {}) => startWorker({
      ...options,
      bindings: { ...shopBindings(demo.url, tiktok.url), SHOPIFY_SHOP_DOMAIN: DEMO_SHOP_DOMAIN, TIKTOK_SDK_URL: `${sdk.url}/events.js`, ...settings },
    }),
    close: async () => {
      await chromium.close();
      await demo.close();
      await tiktok.close();
      await sdk.close();
    },
  };
}
