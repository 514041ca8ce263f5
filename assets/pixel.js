/* tiktok-edge storefront pixel, served first-party at <prefix>/pixel.js (the Worker fills in
 * the config and injects <script src="<prefix>/pixel.js" async> into every HTML page).
 * TikTok's ttq, loaded from <prefix>/sdk.js, plus a server copy of each event to
 * <prefix>/collect with the same event_id, so TikTok merges both. Consent comes from Shopify's
 * Customer Privacy API: nothing is tracked for a visitor who declined marketing.
 * The page's market: its hostname's in STOREFRONT_HOSTS (CONFIG.market), else the optional theme
 * hook, in theme.liquid:
 *   <script>window.ttEdgeMarket = {{ localization.market | json }};</script>
 * Each pixel serving that market is loaded (those scoped to it, else the all-markets ones, the
 * rule of core's pixels::route); with TIKTOK_PIXELS every call goes through ttq.instance(id).
 * Plain ES2017, no dependencies; a failure in here never breaks the theme. */
(function () {
  'use strict';
  var CONFIG = __TT_EDGE_CONFIG__;
  if (window.__ttEdge || !CONFIG.pixels.length) return; // included twice, or no pixel configured
  window.__ttEdge = true;

  const noop = () => {};
  const nativeFetch = window.fetch;
  const PENDING_ADD = 'tt_edge_pending_add';

  const store = {
    get: (k) => { try { return sessionStorage.getItem(k); } catch (e) { return null; } },
    set: (k, v) => { try { sessionStorage.setItem(k, v); } catch (e) { /* storage disabled */ } },
    take: (k) => { const v = store.get(k); try { sessionStorage.removeItem(k); } catch (e) { /* ditto */ } return v; },
  };
  const cookie = (name) => {
    const m = document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'));
    try { return m ? decodeURIComponent(m[1]) : ''; } catch (e) { return m[1]; }
  };
  const root = () => ((window.Shopify && Shopify.routes && Shopify.routes.root) || '/').replace(/\/?$/, '/');
  const randomHex = (bytes) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => (b < 16 ? '0' : '') + b.toString(16)).join('');
  const money = (cents) => (typeof cents === 'number' ? (cents / 100).toFixed(2) : undefined);
  // Shopify ids can exceed 2^53: long integer literals become strings before JSON.parse rounds them.
  const parseJson = (text) => JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (token) => (/^\d{16,}$/.test(token) ? '"' + token + '"' : token)));
  const sameOriginPost = (path, payload) => {
    const body = JSON.stringify(payload);
    try {
      return nativeFetch.call(window, path, { method: 'POST', keepalive: true, credentials: 'same-origin',
        headers: { 'content-type': 'application/json' }, body }).catch(noop);
    } catch (e) { // no fetch, or keepalive refused
      if (navigator.sendBeacon) navigator.sendBeacon(path, new Blob([body], { type: 'application/json' }));
      return Promise.resolve();
    }
  };

  // --- TikTok's ttq queue stub; the SDK is fetched first-party. An existing ttq is reused. ---
  if (!window.ttq) {
    window.TiktokAnalyticsObject = 'ttq';
    const ttq = (window.ttq = []);
    ttq.methods = ['page', 'track', 'identify', 'instances', 'debug', 'on', 'off', 'once', 'ready', 'alias',
      'group', 'enableCookie', 'disableCookie', 'holdConsent', 'revokeConsent', 'grantConsent'];
    ttq.setAndDefer = (target, method) => {
      target[method] = function () { target.push([method].concat(Array.prototype.slice.call(arguments))); };
    };
    ttq.methods.forEach((m) => ttq.setAndDefer(ttq, m));
    ttq.instance = (id) => { const q = ttq._i[id] || []; ttq.methods.forEach((m) => ttq.setAndDefer(q, m)); return q; };
    ttq.load = (id, options) => {
      ttq._i = ttq._i || {}; ttq._i[id] = [];
      ttq._i[id]._u = 'https://analytics.tiktok.com/i18n/pixel/events.js'; // the SDK's own notion of home
      ttq._t = ttq._t || {}; ttq._t[id] = +new Date();
      ttq._o = ttq._o || {}; ttq._o[id] = options || {};
      const script = document.createElement('script');
      script.async = true;
      script.src = CONFIG.prefix + '/sdk.js?sdkid=' + encodeURIComponent(id) + '&lib=ttq';
      document.head.appendChild(script);
    };
  }
  // Always through window.ttq: the loaded SDK may replace the stub object.
  const ttq = (method, ...args) => window.ttq[method].apply(window.ttq, args);
  // One pixel's calls: its instance with several pixels (plain ttq.track reports to every pixel
  // on the page), ttq itself for the single pixel of TIKTOK_PIXEL_ID.
  const pixelCall = (id, method, ...args) => {
    const target = CONFIG.scoped ? window.ttq.instance(id) : window.ttq;
    target[method].apply(target, args);
  };
  // The page's market ({handle, id} or null) and the pixels serving it.
  function market() {
    const hook = window.ttEdgeMarket;
    const hooked = hook && hook.handle ? { handle: String(hook.handle).toLowerCase(), id: Number(hook.id) || undefined } : null;
    if (!CONFIG.market) return hooked;
    return { handle: CONFIG.market, id: hooked && hooked.handle === CONFIG.market ? hooked.id : undefined };
  }
  function serving() {
    const m = market();
    const scoped = m ? CONFIG.pixels.filter((p) => p.markets.indexOf(m.handle) >= 0) : [];
    return scoped.length ? scoped : CONFIG.pixels.filter((p) => !p.markets.length);
  }
  const takes = (pixel, name) => !pixel.events || pixel.events.indexOf(name) >= 0;

  // --- Consent: 'pending' until known; 'held' (unknown, default denied) and 'pending' queue
  // events; 'denied' drops them; 'allowed' sends. The SDK is only loaded once allowed. ---
  let consent = 'pending';
  let limitedDataUse = Boolean(navigator.globalPrivacyControl);
  let sdkLoaded = false;
  const waiting = [];

  function choiceFromPrivacyApi(api) {
    const current = api.currentVisitorConsent ? api.currentVisitorConsent() : null;
    const chosen = !current || current.marketing !== ''; // '' = the visitor has not chosen yet
    return {
      marketing: chosen ? Boolean(api.marketingAllowed()) : null,
      saleOfData: api.saleOfDataAllowed ? Boolean(api.saleOfDataAllowed()) : null,
    };
  }
  function initialChoice() {
    const unknown = { marketing: null, saleOfData: null };
    const shopify = window.Shopify;
    if (!shopify || !(shopify.customerPrivacy || shopify.loadFeatures)) return Promise.resolve(unknown);
    if (shopify.customerPrivacy) return Promise.resolve(choiceFromPrivacyApi(shopify.customerPrivacy));
    return new Promise((resolve) => shopify.loadFeatures([{ name: 'consent-tracking-api', version: '0.1' }],
      (error) => resolve(!error && shopify.customerPrivacy ? choiceFromPrivacyApi(shopify.customerPrivacy) : unknown)));
  }
  // The ad click the visitor arrived with, read now (never stored before the choice): this
  // page's ?ttclid=, else its referrer's when the referrer is a page of this shop (the landing
  // page, when the choice is made on the second page).
  function arrivedWithClick() {
    const ttclidOf = (url) => { try { return new URL(url).searchParams.get('ttclid') || ''; } catch (e) { return ''; } };
    const referrer = document.referrer;
    let sameHost = false;
    try { sameHost = Boolean(referrer) && new URL(referrer).host === location.host; } catch (e) { /* not a URL */ }
    return ttclidOf(location.href) || (sameHost ? ttclidOf(referrer) : '');
  }
  // Tells the Worker (cookie _tt_consent) when the visitor's choice is not what it last heard;
  // a consent given brings the click along, for the Worker to keep as on a landing page.
  function report(choice) {
    if (choice.marketing === null) return Promise.resolve();
    const label = !choice.marketing ? 'denied' : choice.saleOfData === false ? 'limited' : 'granted';
    if (cookie('_tt_consent') === label) return Promise.resolve();
    const body = { marketing: choice.marketing, sale_of_data: choice.saleOfData };
    const click = choice.marketing ? arrivedWithClick() : '';
    if (click) body.ttclid = click;
    return sameOriginPost(CONFIG.prefix + '/consent', body);
  }
  function decide(choice) {
    if (choice.saleOfData === false) limitedDataUse = true;
    const allowed = choice.marketing === null ? CONFIG.consentDefault !== 'denied' : choice.marketing;
    if (!allowed && choice.marketing === null) {
      consent = 'held';
      ttq('holdConsent');
      return Promise.resolve();
    }
    if (!allowed) {
      consent = 'denied';
      waiting.length = 0;
      ttq('revokeConsent');
      return report(choice);
    }
    return report(choice).then(() => { // the Worker knows before the first event arrives
      consent = 'allowed';
      serving().forEach((pixel) => {
        if (sdkLoaded || (window.ttq._i && window.ttq._i[pixel.id])) return;
        ttq('load', pixel.id, limitedDataUse ? { limited_data_use: true } : {});
        pixelCall(pixel.id, 'page');
      });
      sdkLoaded = true;
      ttq('grantConsent');
      waiting.splice(0).forEach((event) => send(event));
      return syncCartAttributes();
    });
  }

  // --- Events: ttq.track and POST <prefix>/collect with the same event_id. ---
  function track(name, eventId, properties) {
    const event = { event: name, event_id: eventId, event_time: Math.floor(Date.now() / 1000),
      page: { url: location.href, referrer: document.referrer }, properties };
    if (consent === 'allowed') send(event);
    else if (consent !== 'denied') waiting.push(event);
  }
  function send(event) {
    const p = event.properties;
    const tracked = {
      contents: p.contents.map((c) => Object.assign({}, c, { content_type: 'product', price: Number(c.price) })),
      content_type: 'product', currency: p.currency, value: Number(p.value),
    };
    serving().filter((pixel) => takes(pixel, event.event))
      .forEach((pixel) => pixelCall(pixel.id, 'track', event.event, tracked, { event_id: event.event_id }));
    sameOriginPost(CONFIG.prefix + '/collect', event);
  }
  function properties(contents, currency) {
    const value = contents.reduce((sum, c) => sum + Number(c.price || 0) * c.quantity, 0).toFixed(2);
    const props = { contents, currency, value };
    const m = market();
    if (m) { props.market_handle = m.handle; props.market_id = m.id; }
    return props;
  }

  function viewContent() {
    const meta = (window.ShopifyAnalytics && ShopifyAnalytics.meta) || {};
    const product = meta.product;
    if (!product && !(meta.page && meta.page.pageType === 'product')) return;
    // Ids from the URL or the add-to-cart form are exact strings; meta's numbers may be rounded.
    const input = document.querySelector('form[action*="/cart/add"] [name="id"]');
    const chosen = new URLSearchParams(location.search).get('variant') || (input && input.value) || '';
    const variants = (product && product.variants) || [];
    const variant = variants.find((v) => chosen && Number(v.id) === Number(chosen)) || variants[0] || {};
    const id = chosen || (variant.id != null ? String(variant.id) : '');
    if (!/^\d+$/.test(id)) return;
    const currency = window.Shopify && Shopify.currency && Shopify.currency.active;
    track('ViewContent', 'vc:' + randomHex(10),
      properties([{ content_id: id, content_name: variant.name, quantity: 1, price: money(variant.price) }], currency));
  }

  // --- AddToCart: the added variants come from the request body; ids and totals from /cart.js. ---
  const CART_ADD_PATH = /\/cart\/add(\.js|\.json)?$/;
  function isCartAdd(url, method) {
    if (String(method || 'GET').toUpperCase() !== 'POST') return false;
    const target = new URL(String(url), location.href);
    return target.origin === location.origin && CART_ADD_PATH.test(target.pathname);
  }
  // [{id: "<digits>", quantity}] from a JSON, form-encoded or FormData body.
  function addedItems(body) {
    if (typeof body === 'string' && /^\s*\{/.test(body)) {
      const json = parseJson(body);
      return (Array.isArray(json.items) ? json.items : [json]).filter((i) => i && i.id != null)
        .map((i) => ({ id: String(i.id), quantity: Number(i.quantity) || 1 }));
    }
    const fields = typeof body === 'string' ? new URLSearchParams(body)
      : body instanceof URLSearchParams || body instanceof FormData ? body : null;
    if (!fields) return [];
    const ids = [], quantities = [];
    fields.forEach((value, key) => {
      if (/^(items\[\d*\]\[)?id\]?$/.test(key)) ids.push(String(value));
      else if (/^(items\[\d*\]\[)?quantity\]?$/.test(key)) quantities.push(Number(value));
    });
    return ids.map((id, i) => ({ id, quantity: quantities[i] || 1 }));
  }
  async function afterAdd(items) {
    if (!items.length || consent === 'denied') return;
    const response = await nativeFetch.call(window, root() + 'cart.js', { credentials: 'same-origin' });
    const cart = parseJson(await response.text());
    const token = String(cart.token || '').split('?')[0];
    const ids = items.map((i) => i.id).filter((id, at, all) => all.indexOf(id) === at);
    for (const id of ids) {
      const lines = (cart.items || []).filter((line) => String(line.variant_id) === id);
      const total = lines.reduce((n, line) => n + line.quantity, 0);
      if (!token || !total) continue;
      const added = items.filter((i) => i.id === id).reduce((n, i) => n + i.quantity, 0);
      const line = lines[0];
      // The same id the server derives from carts/* webhooks: token, variant, quantity after the add.
      track('AddToCart', 'atc:' + token + ':' + id + ':' + total, properties([{ content_id: id,
        content_name: line.product_title || line.title, quantity: added,
        price: money(line.final_price != null ? line.final_price : line.price) }], cart.currency));
    }
    await syncCartAttributes(token);
  }

  // Once per (cart, _ttp): the browsing session's keys become cart attributes → order note_attributes.
  async function syncCartAttributes(token) {
    const ttp = cookie('_ttp');
    const cart = token || cookie('cart').split('?')[0];
    const key = 'tt_edge_cart:' + cart + ':' + ttp;
    if (consent !== 'allowed' || !ttp || !cart || store.get(key)) return;
    const attributes = { _tt_sid: ttp, _ttp: ttp };
    const ttclid = cookie('ttclid');
    if (ttclid) attributes._ttclid = ttclid;
    const m = market();
    if (m) attributes._tt_market = m.handle;
    if (m && m.id) attributes._tt_market_id = String(m.id);
    const response = await nativeFetch.call(window, root() + 'cart/update.js', { method: 'POST',
      credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ attributes }) });
    if (response.ok) store.set(key, '1');
  }

  // Transparent wrappers: the theme's request and response are never touched.
  if (nativeFetch) {
    window.fetch = function (input, init) {
      let items = null;
      try {
        const request = typeof Request !== 'undefined' && input instanceof Request ? input : null;
        if (isCartAdd(request ? request.url : input, (init && init.method) || (request && request.method))) {
          items = init && init.body != null ? Promise.resolve(addedItems(init.body))
            : request ? request.clone().text().then(addedItems) : Promise.resolve([]);
        }
      } catch (e) { items = null; }
      const result = nativeFetch.apply(this, arguments);
      if (items) result.then((response) => response.ok && items.then(afterAdd)).catch(noop);
      return result;
    };
  }
  if (window.XMLHttpRequest) {
    const xhr = XMLHttpRequest.prototype, open = xhr.open, sendXhr = xhr.send, cartAdds = new WeakSet();
    xhr.open = function (method, url) {
      try { if (isCartAdd(url, method)) cartAdds.add(this); else cartAdds.delete(this); } catch (e) { /* theme first */ }
      return open.apply(this, arguments);
    };
    xhr.send = function (body) {
      try {
        if (cartAdds.has(this)) {
          const items = addedItems(body);
          this.addEventListener('loadend', () => {
            if (this.status >= 200 && this.status < 300) afterAdd(items).catch(noop);
          }, { once: true });
        }
      } catch (e) { /* theme first */ }
      return sendXhr.apply(this, arguments);
    };
  }
  // A plain <form action="/cart/add"> navigates away: remember the add, report it on the next page.
  window.addEventListener('submit', (e) => {
    try {
      if (!e.defaultPrevented && isCartAdd(e.target.action, e.target.method)) {
        const items = addedItems(new FormData(e.target));
        if (items.length) store.set(PENDING_ADD, JSON.stringify(items));
      }
    } catch (err) { /* theme first */ }
  });

  function start() {
    document.addEventListener('visitorConsentCollected', (e) => {
      const d = e.detail || {};
      decide({ marketing: Boolean(d.marketingAllowed), saleOfData: d.saleOfDataAllowed == null ? null : Boolean(d.saleOfDataAllowed) }).catch(noop);
    });
    initialChoice().then(decide).catch(noop);
    viewContent();
    const pending = store.take(PENDING_ADD);
    if (pending) afterAdd(JSON.parse(pending)).catch(noop);
  }
  // The script is async and may run before the page's inline Shopify globals: wait for the DOM.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
