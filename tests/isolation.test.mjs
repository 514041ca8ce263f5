// Two shops from one registry run as two Workers (npm run deploy: one Worker, KV namespace and
// set of Durable Objects per shop): here two Worker instances in workerd, each with its own
// storage, secret, shop domain and admin token, as Cloudflare runs them. Whatever shop A's
// credentials sign or claim, nothing of shop B changes: its KV, its queue, its admin figures,
// and what it sent to TikTok. Each attack is also made with B's own credentials, which do
// change B: the checks below would see a change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { big, deliverWebhook, loadFixture, postCollect, setCookieValue, startShop, waitFor } from "./support/harness.mjs";

const A = { domain: "shop-a.myshopify.com", secret: "whsec-shop-a", admin: "shop-a-admin-token-0123456789" };
const B = { domain: "shop-b.myshopify.com", secret: "whsec-shop-b", admin: "shop-b-admin-token-0123456789" };
const ORDER_ID = "5900000000000000777";

const startFor = (s) => startShop({
  // Dry run: B's events stay in its queue, where a redaction or a re-send would show.
  bindings: { SHOPIFY_SHOP_DOMAIN: s.domain, SHOPIFY_WEBHOOK_SECRET: s.secret, ADMIN_TOKEN: s.admin, TIKTOK_ACCESS_TOKEN: "" },
});
const admin = async (worker, token) => {
  const res = await worker.fetch("/tt/admin.json", { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
};

/** Everything of B's that an attack could change: every KV entry, and the queue as its admin reports it. */
async function snapshot(shop, kv) {
  const { keys } = await kv.list();
  const entries = Object.fromEntries(await Promise.all(keys.map(async (k) => [k.name, await kv.get(k.name)])));
  const report = await admin(shop.worker, B.admin);
  assert.equal(report.status, 200);
  const { queue, parked_webhooks: parked, parked_count: parkedCount, mode } = report.body;
  return { entries, queue: { counts: queue.counts, depth: queue.depth, recent: queue.recent, failures: queue.last_failures }, parked, parkedCount, mode };
}

test("shop A's signed webhooks, A's redaction of B's customer, and A's admin token change nothing of shop B", async () => {
  const a = await startFor(A);
  const b = await startFor(B);
  const kv = await b.worker.mf.getKVNamespace("SESSIONS");
  try {
    // B has a shopper: an ad click's visit (session, click and cart link in KV), a browser event and a signed order (queued, dry run).
    const visit = await b.worker.fetch("/products/mug?ttclid=E.C.P.shop-b", { headers: { cookie: `cart=${encodeURIComponent("c1-shop-b?key=k")}`, "cf-connecting-ip": "198.51.100.9" } });
    const ttp = setCookieValue(visit, "_ttp");
    await visit.arrayBuffer();
    await waitFor("B's session and cart link", async () => (await kv.get(`session:${ttp}`)) !== null && (await kv.get("cart:c1-shop-b")) !== null);
    assert.equal((await postCollect(b.worker, { event: "ViewContent", event_id: "vc:shop-b" }, { cookie: `_ttp=${ttp}` })).status, 202);
    const order = { ...loadFixture("order_create.json"), id: big(ORDER_ID), cart_token: "c1-shop-b", note_attributes: [] };
    const placed = await deliverWebhook(b.worker, "orders/create", order, { shop: B.domain, secret: B.secret, webhookId: "wh-b-order" });
    assert.equal(placed.status, 200, JSON.stringify(placed.body));
    const before = await snapshot(b, kv);
    assert.equal(before.queue.recent.length, 2, "B's ViewContent and Purchase");
    assert.ok(Object.keys(before.entries).some((k) => k.startsWith("session:")));

    // 1. A's genuine webhooks (signed with A's secret), as A sends them and claiming to be B.
    const aOrder = { ...order, id: big("5900000000000000888") };
    for (const shop of [A.domain, B.domain]) {
      const sent = await deliverWebhook(b.worker, "orders/create", aOrder, { shop, secret: A.secret });
      assert.equal(sent.status, 401, `A's signature, shop ${shop}`);
    }
    // The same order was accepted by A: A's webhook is real, just not B's.
    assert.equal((await deliverWebhook(a.worker, "orders/create", aOrder, { shop: A.domain, secret: A.secret })).status, 200);

    // 2. A's customers/redact naming B's customer and order, signed by A, for A and claiming B.
    const redact = (shop) => `{"shop_id":1,"shop_domain":"${shop}","customer":{"id":191167,"email":"buyer@example.com"},"orders_to_redact":[${ORDER_ID}]}`;
    for (const shop of [A.domain, B.domain]) {
      assert.equal((await deliverWebhook(b.worker, "customers/redact", redact(shop), { shop, secret: A.secret })).status, 401);
      assert.equal((await deliverWebhook(b.worker, "shop/redact", `{"shop_id":1,"shop_domain":"${shop}"}`, { shop, secret: A.secret })).status, 401);
    }

    // 3. A's admin token on B's admin: the report, the sign-in form and the re-send are refused.
    assert.equal((await admin(b.worker, A.admin)).status, 401);
    assert.equal((await admin(a.worker, A.admin)).status, 200, "A's token opens A's admin");
    const signIn = await b.worker.fetch("/tt/admin", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `token=${A.admin}` });
    assert.equal(setCookieValue(signIn, "tt_admin"), undefined, "no session cookie for A's token");
    await signIn.arrayBuffer();
    const aSession = setCookieValue(await a.worker.fetch("/tt/admin", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `token=${A.admin}` }), "tt_admin");
    assert.ok(aSession, "A's sign-in gives A a session");
    assert.equal((await b.worker.fetch("/tt/admin.json", { headers: { cookie: `tt_admin=${aSession}` } })).status, 401, "A's session cookie on B");
    const resend = await b.worker.fetch("/tt/admin/resend", { method: "POST", headers: { authorization: `Bearer ${A.admin}`, "content-type": "application/json" }, body: JSON.stringify({ state: "dry_run" }) });
    assert.equal(resend.status, 401);

    // Nothing of B changed, but the count of refused webhooks (its alarm, which B's next genuine webhook clears).
    const refusedKey = "webhooks:refused";
    await waitFor("B's count of refused webhooks", async () => (await kv.get(refusedKey)) !== null);
    const after = await snapshot(b, kv);
    delete after.entries[refusedKey];
    assert.deepEqual(after, before);
    assert.deepEqual(b.tiktok.requests, [], "B sent nothing (dry run), so nothing of A's reached TikTok through B");

    // The control: B's own redaction of the same customer, signed by B, does change B.
    const own = await deliverWebhook(b.worker, "customers/redact", redact(B.domain), { shop: B.domain, secret: B.secret });
    assert.equal(own.status, 200);
    assert.equal(own.body.redacted_orders, 1);
    assert.notDeepEqual((await snapshot(b, kv)).queue.recent, before.queue.recent);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
