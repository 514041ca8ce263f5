// A tiny stand-in for a Shopify storefront, for the local demo: a product page, the Ajax cart
// endpoints themes call (/cart/add.js, /cart.js, /cart/update.js) and Shopify's `cart` cookie
// (token with a `?key=` secret). Run by scripts/dev.sh on 127.0.0.1:8788.
import http from "node:http";
import { randomBytes } from "node:crypto";

const PORT = Number(process.env.DEMO_ORIGIN_PORT || 8788);
const PRODUCTS = {
  "demo-mug": { id: 7001234567890, variant: 42001234567890123, title: "Demo Mug", price: "18.50" },
  "demo-tee": { id: 7001234567891, variant: 42001234567890124, title: "Demo Tee", price: "24.00" },
};
const carts = new Map(); // token -> { items: [{variant_id, quantity, price, title}], attributes }

function cartOf(req, res) {
  const cookie = /(?:^|;\s*)cart=([^;]+)/.exec(req.headers.cookie || "");
  const token = cookie && decodeURIComponent(cookie[1]).split("?")[0];
  if (token && carts.has(token)) return [token, carts.get(token)];
  const fresh = `c1-${randomBytes(16).toString("hex")}`;
  carts.set(fresh, { items: [], attributes: {} });
  const value = encodeURIComponent(`${fresh}?key=${randomBytes(10).toString("hex")}`);
  res.setHeader("set-cookie", `cart=${value}; Path=/; Max-Age=1209600; SameSite=Lax`);
  return [fresh, carts.get(fresh)];
}

const page = (title, body) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title} – Demo Shop</title>
<style>body{font:16px system-ui;margin:2rem auto;max-width:40rem}button{font:inherit;padding:.4rem 1rem}</style>
</head><body><header><a href="/">Demo Shop</a> · <a href="/cart">Cart</a></header>${body}</body></html>`;

const productPage = (handle, p) => page(p.title, `
<h1>${p.title}</h1><p>$${p.price}</p>
<form action="/cart/add" method="post" id="add-form">
  <input type="hidden" name="id" value="${p.variant}"><input type="number" name="quantity" value="1" min="1">
  <button type="submit" id="add-to-cart">Add to cart</button>
</form>
<script>
  window.ShopifyAnalytics = { meta: { product: { id: ${p.id}, variants: [{ id: ${p.variant}, price: ${Math.round(Number(p.price) * 100)}, name: ${JSON.stringify(p.title)} }] }, page: { pageType: "product" } } };
  document.getElementById("add-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    await fetch("/cart/add.js", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ items: [{ id: ${p.variant}, quantity: Number(e.target.quantity.value) }] }) });
    document.getElementById("add-to-cart").textContent = "Added";
  });
</script>`);

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString();
  if ((req.headers["content-type"] || "").includes("json")) return text ? JSON.parse(text) : {};
  return Object.fromEntries(new URLSearchParams(text));
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://demo");
  const json = (v) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(v));
  const handle = url.pathname.startsWith("/products/") && url.pathname.slice("/products/".length);
  if (url.pathname === "/") {
    const links = Object.entries(PRODUCTS).map(([h, p]) => `<li><a href="/products/${h}">${p.title}</a></li>`).join("");
    return res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page("Home", `<h1>Demo Shop</h1><ul>${links}</ul>`));
  }
  if (handle && PRODUCTS[handle]) {
    return res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(productPage(handle, PRODUCTS[handle]));
  }
  if (req.method === "POST" && (url.pathname === "/cart/add.js" || url.pathname === "/cart/add")) {
    const body = await readBody(req);
    const [, cart] = cartOf(req, res);
    const items = body.items || [{ id: body.id, quantity: body.quantity }];
    for (const { id, quantity } of items) {
      const product = Object.values(PRODUCTS).find((p) => String(p.variant) === String(id));
      if (!product) return res.writeHead(404, { "content-type": "application/json" }).end('{"status":404,"message":"Cart Error"}');
      const line = cart.items.find((l) => l.variant_id === product.variant);
      if (line) line.quantity += Number(quantity || 1);
      else cart.items.push({ variant_id: product.variant, product_id: product.id, quantity: Number(quantity || 1), price: product.price, title: product.title });
    }
    if (url.pathname === "/cart/add") return res.writeHead(302, { location: "/cart" }).end();
    return json({ items });
  }
  if (url.pathname === "/cart.js") {
    const [token, cart] = cartOf(req, res);
    return json({ token, items: cart.items, attributes: cart.attributes, item_count: cart.items.reduce((n, l) => n + l.quantity, 0) });
  }
  if (req.method === "POST" && url.pathname === "/cart/update.js") {
    const body = await readBody(req);
    const [token, cart] = cartOf(req, res);
    Object.assign(cart.attributes, body.attributes || {});
    return json({ token, attributes: cart.attributes });
  }
  if (url.pathname === "/cart") {
    const [, cart] = cartOf(req, res);
    const rows = cart.items.map((l) => `<li>${l.quantity} × ${l.title}</li>`).join("") || "<li>empty</li>";
    return res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page("Cart", `<h1>Cart</h1><ul>${rows}</ul>`));
  }
  res.writeHead(404, { "content-type": "text/plain" }).end("not found");
});

server.listen(PORT, "127.0.0.1", () => console.log(`demo origin: http://127.0.0.1:${PORT}`));
