// tiktok-edge checkout pixel. Paste all of this into Shopify admin → Settings → Customer events →
// Add custom pixel, then Save and Connect. It reports the checkout steps (InitiateCheckout,
// AddPaymentInfo, the purchase) to the shop's own tiktok-edge Worker with the same event ids as
// the Worker's webhook events, so TikTok counts each step once. Open <your shop>/tt/custom-pixel.js
// again after changing the Worker's settings: the block below is filled in from them.
const CONFIG = __TT_EDGE_CONFIG__;
const COLLECT_URL = CONFIG.origin + CONFIG.prefix + '/collect';

// Shopify gives: analytics (events), browser (cookies), init (consent at load), api (consent updates).
let privacy = (typeof init !== 'undefined' && init.customerPrivacy) || {};
try {
  api.customerPrivacy.subscribe('visitorConsentCollected', (event) => { privacy = event.customerPrivacy || privacy; });
} catch (e) { /* a runtime without consent updates: the consent at load stays in force */ }
const marketingDeclined = () => privacy.marketingAllowed === false;

// The pixels serving the checkout's market (those scoped to it, else the all-markets ones: the
// rule of the Worker's pixels::route), and whether one takes an event.
function serving(handle) {
  const market = handle ? String(handle).toLowerCase() : '';
  const scoped = market ? CONFIG.pixels.filter((p) => p.markets.indexOf(market) >= 0) : [];
  return scoped.length ? scoped : CONFIG.pixels.filter((p) => !p.markets.length);
}
const takes = (pixel, name) => !pixel.events || pixel.events.indexOf(name) >= 0;

// TikTok's ttq in the sandbox, each pixel's SDK from the shop's origin (first party).
function loadTtq(pixels) {
  if (typeof document === 'undefined') return;
  if (!window.ttq) {
    window.TiktokAnalyticsObject = 'ttq';
    const stub = (window.ttq = []);
    stub.methods = ['page', 'track', 'identify', 'instances', 'debug', 'on', 'off', 'once', 'ready', 'alias',
      'group', 'enableCookie', 'disableCookie', 'holdConsent', 'revokeConsent', 'grantConsent'];
    stub.methods.forEach((m) => { stub[m] = (...args) => stub.push([m].concat(args)); });
    stub.instance = (id) => {
      const q = stub._i[id] || [];
      stub.methods.forEach((m) => { q[m] = (...args) => q.push([m].concat(args)); });
      return q;
    };
    stub._i = {}; stub._t = {}; stub._o = {};
  }
  const ttq = window.ttq;
  pixels.forEach((pixel) => {
    if (!ttq._i || ttq._i[pixel.id]) return;
    ttq._i[pixel.id] = Object.assign([], { _u: 'https://analytics.tiktok.com/i18n/pixel/events.js' });
    ttq._t[pixel.id] = Date.now();
    ttq._o[pixel.id] = privacy.saleOfDataAllowed === false ? { limited_data_use: true } : {};
    const script = document.createElement('script');
    script.async = true;
    script.src = CONFIG.origin + CONFIG.prefix + '/sdk.js?sdkid=' + encodeURIComponent(pixel.id) + '&lib=ttq';
    document.head.appendChild(script);
  });
}

const gidTail = (id) => (id == null ? '' : String(id).split('/').pop());
const amount = (money) => (money && money.amount != null ? money.amount : undefined);
async function cookie(name) {
  try { return (await browser.cookie.get(name)) || undefined; } catch (e) { return undefined; }
}

// text/plain keeps this a simple request: no CORS preflight, which keepalive requests may not make.
function send(body) {
  fetch(COLLECT_URL, { method: 'POST', keepalive: true, credentials: 'include',
    headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: JSON.stringify(body) }).catch(() => {});
}

async function report(name, eventId, event, value) {
  if (!eventId || !CONFIG.pixels.length) return;
  const checkout = (event.data && event.data.checkout) || {};
  const documentContext = (event.context && event.context.document) || {};
  const pageUrl = documentContext.location && documentContext.location.href;
  if (marketingDeclined()) {
    // The refusal, not the event: the Worker links it to this checkout (its token, and the cart
    // token in the page URL) and to the storefront's _ttp, whose identifiers it forgets, so no
    // event of this checkout or its order reaches TikTok, whichever copy comes first.
    send({ event: name, event_id: eventId, page: { url: pageUrl }, checkout_token: checkout.token,
      user: { ttp: await cookie('_ttp') },
      consent: { marketing: false, sale_of_data: privacy.saleOfDataAllowed == null ? null : privacy.saleOfDataAllowed } });
    return;
  }
  const market = (checkout.localization && checkout.localization.market) || {};
  const contents = (checkout.lineItems || []).map((line) => {
    const variant = line.variant || {};
    return { content_id: gidTail(variant.id), content_name: line.title || (variant.product && variant.product.title),
      quantity: line.quantity, price: amount(variant.price) };
  }).filter((c) => c.content_id);
  const properties = { contents, value: amount(value(checkout)) };
  // A checkout without a currency (Shopify can give null) sends none: the Worker then leaves
  // value and prices out, as TikTok cannot use them without it.
  if (typeof checkout.currencyCode === 'string' && checkout.currencyCode) properties.currency = checkout.currencyCode;
  if (name === CONFIG.purchaseEvent) properties.order_id = eventId;
  if (market.handle) properties.market_handle = market.handle;
  if (/^\d+$/.test(gidTail(market.id))) properties.market_id = Number(gidTail(market.id));
  const body = {
    event: name, event_id: eventId,
    event_time: Math.floor((Date.parse(event.timestamp) || Date.now()) / 1000),
    page: { url: pageUrl, referrer: documentContext.referrer },
    properties,
    // The sandbox sends no cookies with requests: the storefront's ids travel in the body.
    user: { ttp: await cookie('_ttp'), ttclid: await cookie('ttclid') },
    consent: { marketing: privacy.marketingAllowed == null ? null : privacy.marketingAllowed,
      sale_of_data: privacy.saleOfDataAllowed == null ? null : privacy.saleOfDataAllowed },
    checkout_token: checkout.token,
  };
  send(body);
  const pixels = serving(market.handle).filter((pixel) => takes(pixel, name));
  loadTtq(pixels);
  if (typeof window !== 'undefined' && window.ttq) {
    const tracked = { contents: contents.map((c) => Object.assign({ content_type: 'product' }, c, { price: Number(c.price) })),
      content_type: 'product', value: Number(properties.value) };
    if (properties.currency) tracked.currency = properties.currency;
    // Several pixels: each through its instance (plain ttq.track reports to every pixel loaded).
    if (!CONFIG.scoped) window.ttq.track(name, tracked, { event_id: eventId });
    else pixels.forEach((pixel) => window.ttq.instance(pixel.id).track(name, tracked, { event_id: eventId }));
  }
}

const checkoutToken = (event) => (event.data && event.data.checkout && event.data.checkout.token) || '';
analytics.subscribe('checkout_started', (event) => report('InitiateCheckout',
  checkoutToken(event) && 'ic:' + checkoutToken(event), event, (c) => c.subtotalPrice));
analytics.subscribe('payment_info_submitted', (event) => report('AddPaymentInfo',
  checkoutToken(event) && 'api:' + checkoutToken(event), event, (c) => c.subtotalPrice));
analytics.subscribe('checkout_completed', (event) => {
  const order = event.data && event.data.checkout && event.data.checkout.order;
  return report(CONFIG.purchaseEvent, order && gidTail(order.id), event, (c) => c.totalPrice);
});
