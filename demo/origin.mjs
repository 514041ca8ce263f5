// A tiny stand-in for a Shopify storefront, for the local demo and the browser test: product pages
// with Shopify's page globals, the Ajax cart endpoints themes call (/cart/add.js, /cart.js,
// /cart/update.js), Shopify's `cart` cookie (token with a `?key=` secret), and a demo checkout
// that sends signed checkouts/create and orders/create webhooks to the Worker, as Shopify would;
// it also relays TikTok's SDK (/tiktok/events.js), so an offline demo fails quietly.
// Run by scripts/dev.sh on 127.0.0.1:8788 (DEMO_ORIGIN_PORT); the browser test imports it.
import http from "node:http";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

// Ids are BigInt: Shopify's exceed 2^53, which JavaScript numbers would round.
export const PRODUCTS = {
  // Each product's page adds to the cart the way a different kind of theme does.
  "demo-mug": { id: 7001234567890n, variant: 42001234567890123n, title: "Demo Mug", cents: 1850, addWith: "fetch" },
  "demo-cap": { id: 7001234567892n, variant: 42001234567890125n, title: "Demo Cap", cents: 1200, addWith: "xhr" },
  "demo-tee": { id: 7001234567891n, variant: 42001234567890124n, title: "Demo Tee", cents: 2400, addWith: "form" },
};
export const DEMO_MARKET = { handle: "us", id: 23505895537 };
/** Where the demo shop relays TikTok's SDK from (TIKTOK_SDK_URL in .dev.vars points here). */
const TIKTOK_SDK_PATH = "/tiktok/events.js";
const TIKTOK_SDK_UPSTREAM = "https://analytics.tiktok.com/i18n/pixel/events.js";
/**
 * The demo shop's permanent domain: its webhooks say so (SHOPIFY_SHOP_DOMAIN in .dev.vars);
 * DEMO_SHOP_DOMAIN for another demo shop (`bash scripts/dev.sh --shop <name>`).
 */
export const SHOP_DOMAIN = process.env.DEMO_SHOP_DOMAIN || "demo-shop.myshopify.com";

/** JSON text with BigInt ids written as bare digits. */
const shopifyJson = (value) =>
  JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `__BIG__${v}` : v)).replace(/"__BIG__(\d+)"/g, "$1");
const decimal = (cents) => (cents / 100).toFixed(2);
const moneySet = (cents) => ({
  shop_money: { amount: decimal(cents), currency_code: "USD" },
  presentment_money: { amount: decimal(cents), currency_code: "USD" },
});
const escapeHtml = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body, head = "") => `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)} – Demo Shop</title>
<script>
  // What Shopify's content_for_header defines on every storefront page.
  window.Shopify = window.Shopify || {};
  Shopify.shop = ${JSON.stringify(SHOP_DOMAIN)};
  Shopify.currency = { active: "USD", rate: "1.0" };
  Shopify.routes = Shopify.routes || {};
  Shopify.routes.root = "/";
  // The theme hook tiktok-edge reads the market from ({{ localization.market | json }} in Liquid).
  window.ttEdgeMarket = ${JSON.stringify(DEMO_MARKET)};
</script>${head}
<style>body{font:16px system-ui;margin:2rem auto;max-width:40rem}button{font:inherit;padding:.4rem 1rem}</style>
</head><body><header><a href="/">Demo Shop</a> · <a href="/cart">Cart</a></header>${body}</body></html>`;

// How each kind of theme posts the add: Ajax JSON via fetch, form-encoded via XHR, or a plain form.
const ADD_SCRIPTS = {
  fetch: `fetch(Shopify.routes.root + "cart/add.js", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ items: [{ id: form.id.value, quantity: Number(form.quantity.value) }] }) }).then(added);`,
  xhr: `const xhr = new XMLHttpRequest();
    xhr.open("POST", Shopify.routes.root + "cart/add.js");
    xhr.setRequestHeader("content-type", "application/x-www-form-urlencoded");
    xhr.onload = added;
    xhr.send(new URLSearchParams(new FormData(form)).toString());`,
};

const productPage = (p) => page(p.title, `
<h1>${escapeHtml(p.title)}</h1><p>$${decimal(p.cents)}</p>
<form action="/cart/add" method="post" id="add-form">
  <input type="hidden" name="id" value="${p.variant}"><input type="number" name="quantity" value="1" min="1">
  <button type="submit" id="add-to-cart">Add to cart</button> <span id="added"></span>
</form>
${p.addWith === "form" ? "" : `<script>
  let adds = 0;
  const added = () => { document.getElementById("added").textContent = "Added (" + ++adds + ")"; };
  document.getElementById("add-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    ${ADD_SCRIPTS[p.addWith]}
  });
</script>`}`, `
<script>
  window.ShopifyAnalytics = window.ShopifyAnalytics || {};
  ShopifyAnalytics.meta = { currency: "USD", page: { pageType: "product", resourceType: "product", resourceId: ${p.id} },
    product: { id: ${p.id}, vendor: "Demo", type: "", variants: [{ id: ${p.variant}, price: ${p.cents}, name: ${JSON.stringify(p.title)}, public_title: null, sku: "" }] } };
</script>`);

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString();
  if ((req.headers["content-type"] || "").includes("json")) return text ? JSON.parse(text.replace(/(:\s*)(\d{16,})/g, '$1"$2"')) : {};
  const form = new URLSearchParams(text);
  const items = [];
  for (const [key, value] of form) {
    const field = /^items\[(\d*)\]\[(id|quantity)\]$/.exec(key);
    if (field) (items[Number(field[1] || items.length)] ??= {})[field[2]] = value;
  }
  return { ...Object.fromEntries(form), ...(items.length ? { items } : {}) };
}

function lineJson(line) {
  const p = line.product;
  return {
    id: p.variant, key: `${p.variant}:${line.key}`, variant_id: p.variant, product_id: p.id, quantity: line.quantity,
    title: p.title, product_title: p.title, price: p.cents, final_price: p.cents, line_price: p.cents * line.quantity,
    final_line_price: p.cents * line.quantity, sku: "", vendor: "Demo", properties: {},
  };
}

function cartJson(cart) {
  const items = cart.items.map(lineJson);
  const total = items.reduce((n, l) => n + l.line_price, 0);
  return {
    token: `${cart.token}?key=${cart.key}`, note: null, attributes: cart.attributes, currency: "USD",
    item_count: items.reduce((n, l) => n + l.quantity, 0), total_price: total, items_subtotal_price: total, items,
  };
}

/**
 * Starts the demo storefront on `port` (0: any free port). Checkout webhooks go to
 * `demo.workerUrl` + /tt/webhooks/shopify, signed with `demo.webhookSecret`; both may be set
 * after start (the test learns the Worker's URL only after starting it).
 */
export async function startDemoOrigin({ port = 0, workerUrl = "http://127.0.0.1:8787", webhookSecret = "demo-webhook-secret", routePrefix = "/tt" } = {}) {
  const carts = new Map(); // token -> { token, key, items: [{product, quantity, key}], attributes }
  let orderNumber = 1000;

  function cartOf(req, res) {
    const cookie = /(?:^|;\s*)cart=([^;]+)/.exec(req.headers.cookie || "");
    const token = cookie && decodeURIComponent(cookie[1]).split("?")[0];
    if (token && carts.has(token)) return carts.get(token);
    const cart = { token: `c1-${randomBytes(16).toString("hex")}`, key: randomBytes(10).toString("hex"), items: [], attributes: {} };
    carts.set(cart.token, cart);
    res.setHeader("set-cookie", `cart=${encodeURIComponent(`${cart.token}?key=${cart.key}`)}; Path=/; Max-Age=1209600; SameSite=Lax`);
    return cart;
  }

  async function deliverWebhook(topic, payload) {
    const body = shopifyJson(payload);
    try {
      const res = await fetch(new URL(`${routePrefix}/webhooks/shopify`, demo.workerUrl), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-shopify-topic": topic,
          "x-shopify-webhook-id": randomUUID(),
          "x-shopify-shop-domain": SHOP_DOMAIN,
          "x-shopify-api-version": "2026-07",
          "x-shopify-hmac-sha256": createHmac("sha256", demo.webhookSecret).update(body).digest("base64"),
        },
        body,
      });
      return `${topic} → HTTP ${res.status}`;
    } catch (e) {
      return `${topic} → not delivered (${e.message}); is the Worker running at ${demo.workerUrl}?`;
    }
  }

  // Shopify-shaped checkouts/create and orders/create bodies (see tests/fixtures/shopify) for `cart`.
  function checkoutWebhooks(cart, req) {
    const now = new Date().toISOString();
    const noteAttributes = Object.entries(cart.attributes).map(([name, value]) => ({ name, value: String(value) }));
    const address = { first_name: "Demo", last_name: "Buyer", zip: "94103", country_code: "US", phone: null };
    const subtotal = cart.items.reduce((n, l) => n + l.product.cents * l.quantity, 0);
    const checkoutToken = randomBytes(16).toString("hex");
    const ip = req.headers["cf-connecting-ip"] || req.socket.remoteAddress;
    const userAgent = req.headers["user-agent"] || "";
    const checkout = {
      token: checkoutToken, cart_token: cart.token, email: "demo@example.com", phone: null, gateway: null,
      buyer_accepts_marketing: false, created_at: now, updated_at: now, completed_at: null, landing_site: "/",
      note_attributes: noteAttributes, shipping_lines: [], shipping_address: address, billing_address: address,
      customer: { id: 9007199254740993n, email: "demo@example.com", first_name: "Demo", last_name: "Buyer", phone: null },
      line_items: cart.items.map((l) => ({
        product_id: l.product.id, variant_id: l.product.variant, sku: "", title: l.product.title, quantity: l.quantity,
        price: decimal(l.product.cents), line_price: decimal(l.product.cents * l.quantity), requires_shipping: true,
      })),
      currency: "USD", presentment_currency: "USD", total_price: decimal(subtotal), subtotal_price: decimal(subtotal),
      source_name: "web", customer_locale: "en-US",
    };
    const orderId = 5900000000000000000n + BigInt(`0x${randomBytes(6).toString("hex")}`);
    const order = {
      id: orderId, admin_graphql_api_id: `gid://shopify/Order/${orderId}`, name: `#${++orderNumber}`,
      email: "demo@example.com", contact_email: "demo@example.com", phone: null,
      cart_token: cart.token, checkout_token: checkoutToken, created_at: now,
      currency: "USD", presentment_currency: "USD", total_price: decimal(subtotal), subtotal_price: decimal(subtotal),
      total_price_set: moneySet(subtotal), subtotal_price_set: moneySet(subtotal),
      financial_status: "paid", source_name: "web", test: false, cancelled_at: null,
      browser_ip: ip, client_details: { browser_ip: ip, user_agent: userAgent, accept_language: req.headers["accept-language"] || null },
      landing_site: "/", note_attributes: noteAttributes, customer: checkout.customer,
      billing_address: address, shipping_address: address,
      line_items: cart.items.map((l, i) => ({
        id: 14000000000000000000n + BigInt(i + 1), variant_id: l.product.variant, product_id: l.product.id,
        title: l.product.title, name: l.product.title, sku: "", quantity: l.quantity, current_quantity: l.quantity,
        price: decimal(l.product.cents), price_set: moneySet(l.product.cents),
      })),
    };
    return { checkout, order };
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://demo");
    const html = (status, body) => res.writeHead(status, { "content-type": "text/html; charset=utf-8" }).end(body);
    const json = (value, status = 200) => res.writeHead(status, { "content-type": "application/json" }).end(shopifyJson(value));
    const handle = url.pathname.startsWith("/products/") && url.pathname.slice("/products/".length);
    try {
      if (url.pathname === "/") {
        const links = Object.entries(PRODUCTS).map(([h, p]) => `<li><a href="/products/${h}">${escapeHtml(p.title)}</a></li>`).join("");
        return html(200, page("Home", `<h1>Demo Shop</h1><ul>${links}</ul>`));
      }
      if (handle && PRODUCTS[handle]) return html(200, productPage(PRODUCTS[handle]));
      if (url.pathname === TIKTOK_SDK_PATH) {
        // TikTok's SDK through the demo shop (.dev.vars' TIKTOK_SDK_URL): online, the real one;
        // offline, a plain 503 that the Worker answers with one quiet log line (a failed DNS
        // lookup in the Worker's own fetch would make workerd print an internal error).
        try {
          const sdk = await fetch(`${TIKTOK_SDK_UPSTREAM}${url.search}`, { signal: AbortSignal.timeout(5000) });
          if (sdk.ok) return res.writeHead(200, { "content-type": "application/javascript" }).end(Buffer.from(await sdk.arrayBuffer()));
        } catch { /* offline: answered below */ }
        return res.writeHead(503, { "content-type": "text/plain" }).end("TikTok's SDK is not reachable from this machine");
      }
      if (req.method === "POST" && ["/cart/add.js", "/cart/add"].includes(url.pathname)) {
        const body = await readBody(req);
        const cart = cartOf(req, res);
        const requested = body.items || [{ id: body.id, quantity: body.quantity }];
        const lines = [];
        for (const { id, quantity } of requested) {
          const product = Object.values(PRODUCTS).find((p) => String(p.variant) === String(id));
          if (!product) return json({ status: 404, message: "Cart Error", description: "Cannot find variant" }, 404);
          let line = cart.items.find((l) => l.product === product);
          if (!line) cart.items.push((line = { product, quantity: 0, key: randomBytes(4).toString("hex") }));
          line.quantity += Number(quantity || 1);
          lines.push(line);
        }
        if (url.pathname === "/cart/add") return res.writeHead(302, { location: "/cart" }).end();
        return json(body.items ? { items: lines.map(lineJson) } : lineJson(lines[0]));
      }
      if (url.pathname === "/cart.js") return json(cartJson(cartOf(req, res)));
      if (req.method === "POST" && url.pathname === "/cart/update.js") {
        const body = await readBody(req);
        const cart = cartOf(req, res);
        for (const [name, value] of Object.entries(body.attributes || {})) {
          if (value === "") delete cart.attributes[name];
          else cart.attributes[name] = value;
        }
        return json(cartJson(cart));
      }
      // A checkout page of Shopify's one-page checkout ("Buy it now" opens one for a new cart):
      // it only has to pass the Worker; the test plays its webhooks.
      if (/^\/checkouts\/cn\/[A-Za-z0-9_-]+$/.test(url.pathname)) return html(200, page("Checkout", "<h1>Checkout</h1>"));
      if (url.pathname === "/cart") {
        const cart = cartOf(req, res);
        const rows = cart.items.map((l) => `<li>${l.quantity} × ${escapeHtml(l.product.title)}</li>`).join("") || "<li>empty</li>";
        const checkout = cart.items.length ? `<form method="post" action="/checkout"><button id="checkout">Check out (demo)</button></form>` : "";
        return html(200, page("Cart", `<h1>Cart</h1><ul>${rows}</ul>${checkout}`));
      }
      if (req.method === "POST" && url.pathname === "/checkout") {
        const cart = cartOf(req, res);
        if (!cart.items.length) return res.writeHead(303, { location: "/cart" }).end();
        const { checkout, order } = checkoutWebhooks(cart, req);
        const delivered = [await deliverWebhook("checkouts/create", checkout), await deliverWebhook("orders/create", order)];
        cart.items = []; // Shopify empties the cart once the order is placed
        cart.attributes = {};
        return html(200, page("Thank you", `<h1>Thank you!</h1>
<p id="order" data-order-id="${order.id}" data-checkout-token="${checkout.token}">Order ${order.name} (id ${order.id}) is placed.</p>
<p>Webhooks sent to the Worker, as Shopify would send them:</p><ul>${delivered.map((d) => `<li>${escapeHtml(d)}</li>`).join("")}</ul>
<p>See what went to TikTok on <a href="${routePrefix}/admin">${routePrefix}/admin</a>: sign in there with the
<code>ADMIN_TOKEN</code> from <code>.dev.vars</code>.</p>`));
      }
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`demo origin error: ${e.message}`);
    }
  });

  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const demo = {
    url: `http://127.0.0.1:${server.address().port}`,
    workerUrl,
    webhookSecret,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
  return demo;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const demo = await startDemoOrigin({
    port: Number(process.env.DEMO_ORIGIN_PORT || 8788),
    workerUrl: process.env.WORKER_URL || "http://127.0.0.1:8787",
    webhookSecret: process.env.SHOPIFY_WEBHOOK_SECRET || "demo-webhook-secret",
    routePrefix: process.env.ROUTE_PREFIX || "/tt",
  });
  console.log(`demo origin: ${demo.url} (checkout webhooks go to ${demo.workerUrl})`);
}
