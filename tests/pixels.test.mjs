// Several pixels on one shop (TIKTOK_PIXELS) and two hostnames (STOREFRONT_HOSTS): each event
// reaches exactly the pixels of its market and name, once each, with each pixel's own token;
// a token revoked on one pixel pauses only that pixel. TikTok is played; the Worker is the build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startShop, waitFor, postCollect, tiktokAnswer } from "./support/harness.mjs";

const TTP = "01JY68AFXQXP2232M0V748XS0P_.tt.1";
// Two all-markets pixels (the first with the default token) and one scoped to the market fr.
const PIXELS = JSON.stringify([
  { id: "CALLPIXEL1" },
  { id: "CALLPIXEL2", token: "TIKTOK_TOKEN_2", test_event_code: "TEST2" },
  { id: "CFRPIXEL01", token: "TIKTOK_TOKEN_FR", markets: ["fr"] },
]);
const TOKENS = { CALLPIXEL1: "tok-all-1", CALLPIXEL2: "tok-all-2", CFRPIXEL01: "tok-fr" };
const BINDINGS = {
  TIKTOK_PIXEL_ID: "", // the single pixel's settings are replaced, not combined
  TIKTOK_PIXELS: PIXELS,
  TIKTOK_ACCESS_TOKEN: TOKENS.CALLPIXEL1,
  TIKTOK_TOKEN_2: TOKENS.CALLPIXEL2,
  TIKTOK_TOKEN_FR: TOKENS.CFRPIXEL01,
  // Both names reach the local Worker: two hostnames of one shop, localhost serving fr.
  STOREFRONT_HOSTS: "127.0.0.1, localhost=fr",
};

/** (pixel, token, test code, event, event_id) of every event TikTok received. */
const received = (tiktok) => tiktok.requests.flatMap((r) => {
  const body = JSON.parse(r.body);
  return body.data.map((e) => [body.event_source_id, r.headers["access-token"], body.test_event_code ?? null, e.event, e.event_id]);
});

function collect(shop, event, eventId, market) {
  const properties = { currency: "EUR", contents: [{ content_id: "42001234567890123", quantity: 1, price: "10.00" }] };
  if (market) properties.market_handle = market;
  return postCollect(shop.worker, { event, event_id: eventId, page: { url: "https://shop.example/products/mug" }, properties },
    { cookie: `_ttp=${TTP}` });
}

const twoHostShop = (onTikTok) => startShop({ tiktok: onTikTok, bindings: BINDINGS });

test("each event reaches exactly the pixels of its market and name, once each, with each pixel's token; the scoped pixel gets only its market's", async () => {
  const shop = await twoHostShop();
  try {
    const health = await (await shop.worker.fetch("/tt/health")).json();
    assert.equal(health.status, "ok", JSON.stringify(health.problems));
    assert.deepEqual(health.pixels.map((p) => [p.id, p.token, p.mode, p.markets]), [
      ["CALLPIXEL1", "TIKTOK_ACCESS_TOKEN", "live", []],
      ["CALLPIXEL2", "TIKTOK_TOKEN_2", "live", []],
      ["CFRPIXEL01", "TIKTOK_TOKEN_FR", "live", ["fr"]],
    ]);
    assert.ok(!JSON.stringify(health).includes("tok-"), "no token in health");

    for (const [event, id, market] of [["ViewContent", "vc:fr-1", "fr"], ["AddToCart", "atc:us-1", "us"], ["AddToCart", "atc:none-1", null]]) {
      const res = await collect(shop, event, id, market);
      assert.equal(res.status, 202);
      assert.deepEqual(await res.json(), { event_id: id, queued: true });
    }
    // A second copy of each changes nothing for any pixel.
    assert.deepEqual(await (await collect(shop, "ViewContent", "vc:fr-1", "fr")).json(), { event_id: "vc:fr-1", queued: false });

    const expected = [
      ["CALLPIXEL1", TOKENS.CALLPIXEL1, null, "AddToCart", "atc:none-1"],
      ["CALLPIXEL1", TOKENS.CALLPIXEL1, null, "AddToCart", "atc:us-1"],
      ["CALLPIXEL2", TOKENS.CALLPIXEL2, "TEST2", "AddToCart", "atc:none-1"],
      ["CALLPIXEL2", TOKENS.CALLPIXEL2, "TEST2", "AddToCart", "atc:us-1"],
      ["CFRPIXEL01", TOKENS.CFRPIXEL01, null, "ViewContent", "vc:fr-1"],
    ];
    await waitFor("five pixel events at TikTok", () => received(shop.tiktok).length >= expected.length);
    // The queue is drained once the queue's depth is 0: nothing more is coming.
    await waitFor("an empty queue", async () => (await (await shop.worker.fetch("/tt/health?queue=1")).json()).queue_depth === 0);
    assert.deepEqual(received(shop.tiktok).sort(), expected);
  } finally {
    await shop.close();
  }
});

test("the storefront script of each hostname carries its market and every pixel, never a token", async () => {
  const shop = await twoHostShop();
  try {
    const port = new URL(shop.worker.url).port;
    const config = async (host) => {
      const js = await (await fetch(`http://${host}:${port}/tt/pixel.js`)).text();
      return JSON.parse(js.match(/var CONFIG = (\{.*?\});/)[1]);
    };
    const fr = await config("localhost");
    assert.equal(fr.market, "fr");
    assert.equal(fr.scoped, true);
    assert.deepEqual(fr.pixels.map((p) => p.id), ["CALLPIXEL1", "CALLPIXEL2", "CFRPIXEL01"]);
    assert.equal((await config("127.0.0.1")).market, null);
    const js = await (await fetch(`http://localhost:${port}/tt/pixel.js`)).text();
    assert.ok(!Object.values(TOKENS).some((t) => js.includes(t)) && !js.includes("TIKTOK_TOKEN"), "no token or secret name");
    for (const id of ["CALLPIXEL2", "CFRPIXEL01"]) {
      const sdk = await shop.worker.fetch(`/tt/sdk.js?sdkid=${id}&lib=ttq`);
      assert.notEqual(sdk.status, 404, `the SDK of ${id} is served`);
      await sdk.arrayBuffer();
    }
    assert.equal((await shop.worker.fetch("/tt/sdk.js?sdkid=COTHERPIXEL&lib=ttq")).status, 404);
  } finally {
    await shop.close();
  }
});

test("a token revoked on one pixel pauses only that pixel: the others keep sending, health names it, nothing is lost", async () => {
  let revoked = true;
  const shop = await twoHostShop((req, res) => {
    const answer = req.headers["access-token"] === TOKENS.CALLPIXEL2 && revoked
      ? tiktokAnswer(40105, "Access token is invalid or has expired")
      : tiktokAnswer(0);
    res.writeHead(200, { "content-type": "application/json" }).end(answer);
  });
  try {
    await collect(shop, "AddToCart", "atc:revoked-1", null);
    // Health: degraded (424), not paused: the other pixels keep sending; the problem names the
    // pixel and the secret to replace.
    const paused = await waitFor("CALLPIXEL2 paused in health", async () => {
      const res = await shop.worker.fetch("/tt/health");
      const h = await res.json();
      return h.pixels[1].paused && { status: res.status, h };
    });
    assert.equal(paused.status, 424);
    assert.equal(paused.h.status, "degraded");
    assert.equal(paused.h.queue_paused, undefined, "sending is not paused");
    assert.equal(paused.h.problems.length, 1);
    assert.equal(paused.h.problems[0].name, "TIKTOK_PIXELS");
    assert.match(paused.h.problems[0].message, /^pixel CALLPIXEL2 is paused, the other pixels keep sending: TikTok code 40105: .*wrangler secret put TIKTOK_TOKEN_2`/);
    await collect(shop, "AddToCart", "atc:revoked-2", null);
    await collect(shop, "ViewContent", "vc:revoked-fr", "fr");
    const sentBy = (pixel, id) => received(shop.tiktok).some(([p, , , , e]) => p === pixel && e === id);
    await waitFor("the other pixels' events", () => sentBy("CALLPIXEL1", "atc:revoked-2") && sentBy("CFRPIXEL01", "vc:revoked-fr"));
    const health = await (await shop.worker.fetch("/tt/health")).json();
    assert.equal(health.pixels[0].paused, undefined);
    assert.equal(health.pixels[2].paused, undefined);
    assert.match(health.pixels[1].paused.reason, /40105/);
    revoked = false; // a new token: at the pause's next check, its events go out
    await waitFor("CALLPIXEL2's events after the check", () => sentBy("CALLPIXEL2", "atc:revoked-1") && sentBy("CALLPIXEL2", "atc:revoked-2"), 30_000);
    const atc = received(shop.tiktok).filter(([p, , , , e]) => e.startsWith("atc:revoked") && p !== "CALLPIXEL2");
    assert.equal(atc.length, 2, "CALLPIXEL1 got each once");
    await waitFor("health ok once CALLPIXEL2 sends again", async () => (await shop.worker.fetch("/tt/health")).status === 200);
  } finally {
    await shop.close();
  }
});
