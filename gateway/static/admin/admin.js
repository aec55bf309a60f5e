// MiniMall staff console: staff log in and see the sections their roles open: the analytics reports drawn as
// SVG (categories, brands and products by name) and their exports, orders, after-sales cases, money that got stuck
// (refunds, wallet charges), shoppers' withdrawals (finance approve or reject them, and check every ledger account
// against its entries), coupon templates (approving those waiting), products (opened: submitted, audited, put on the
// shelf, their stock adjusted), shoppers' reviews (hidden and put back by moderators), and users (roles, staff
// passwords, their member record); editors create products and coupon templates.
// No framework, no build step, nothing fetched from another origin; server text only ever set as textContent.
"use strict";

const API = "/api/v1";
// Who may do what: each list is the x-roles of the route named beside it in /openapi.json (the gateway's role
// rules; tests/unit/gateway/test_admin_console.py keeps the two equal). The console only hides what the API would refuse.
const ROLES = {
  reports: ["admin", "operator", "finance"],                  // GET /admin/analytics/overview (REPORT_READERS)
  walletReports: ["admin", "finance"],                        // POST /admin/reports of WALLET_REPORTS' kinds
  orders: ["admin", "operator", "customer_service"],          // GET /admin/orders
  ship: ["admin", "operator"],                                // POST /admin/orders/{id}/ship
  cancelUnshipped: ["admin", "customer_service"], // POST /admin/orders/{id}/cancel-unshipped
  cancelReview: ["admin", "customer_service"],                // POST /admin/orders/{id}/cancel-review
  afterSales: ["admin", "operator", "customer_service"],      // GET /admin/after-sales
  decide: ["admin", "customer_service"],                      // POST /admin/after-sales/{id}/decision
  receive: ["admin", "operator", "customer_service"],         // POST /admin/after-sales/{id}/receive
  retryRefund: ["admin", "customer_service"],                 // POST /admin/after-sales/{id}/retry-refund
  closeRefund: ["admin"],                                     // POST /admin/refunds/{refund_no}/close
  refunds: ["admin", "customer_service", "finance"],          // GET /admin/refunds (REFUND_READERS)
  retryRefundByNo: ["admin", "customer_service"],             // POST /admin/refunds/{refund_no}/retry
  walletReviews: ["admin", "finance", "customer_service"],    // GET /admin/wallet-reviews
  resolveWallet: ["admin", "finance"],                        // POST /admin/wallet-reviews/{id}/resolve
  withdrawals: ["admin", "finance"],                          // GET /admin/withdrawals
  decideWithdrawal: ["finance"],                              // POST /admin/withdrawals/{id}/decision
  ledgerAudit: ["admin", "finance"],                          // GET /admin/ledger-audit
  products: ["admin", "operator"],                            // GET /admin/products (EDITORS)
  createProduct: ["admin", "operator"],                       // POST /admin/products
  submitProduct: ["admin", "operator"],                       // POST /admin/products/{id}/submit
  auditProduct: ["admin"],                                    // POST /admin/products/{id}/audit (AUDITORS)
  shelfProduct: ["admin", "operator"],                        // POST /admin/products/{id}/shelf
  adjustStock: ["admin", "operator"],                         // POST /admin/products/{id}/skus/{sku_id}/stock
  reviews: ["admin", "operator", "customer_service"],         // GET /admin/reviews (REVIEW_MODERATORS)
  hideReview: ["admin", "operator", "customer_service"],      // POST /admin/products/{id}/reviews/{review_id}/hide
  unhideReview: ["admin", "operator", "customer_service"],    // POST /admin/reviews/{review_id}/unhide
  couponTemplates: ["admin", "operator", "finance"],          // GET /admin/coupon-templates (TEMPLATE_READERS)
  createTemplate: ["admin", "operator"],                      // POST /admin/coupons (TEMPLATE_EDITORS)
  approveTemplate: ["admin", "finance"],                      // POST /admin/coupon-templates/{id}/approve
  users: ["admin", "operator", "customer_service"],           // POST /admin/users/search (USER_FINDERS)
  setRoles: ["admin"],                                        // PUT /admin/users/{id}/roles
  staffPassword: ["admin"],                                   // POST /admin/users/{id}/password
  memberRecord: ["admin", "customer_service", "finance"],     // GET /admin/members/{user_id} (MEMBER_READERS)
};
// The exports that carry shoppers' wallets (WALLET_REPORTS in services/common/auth.py): offered to walletReports only.
const WALLET_REPORTS = ["money", "events"];
// Who may log in: every staff role (STAFF_ROLES in services/common/auth.py).
const STAFF_ROLES = ["admin", "operator", "customer_service", "finance"];
// Each section and what opens it.
const SECTIONS = [["dashboard-view", ["reports"]], ["orders-view", ["orders"]], ["aftersales-view", ["afterSales"]],
                  ["money-view", ["afterSales", "walletReviews", "refunds"]], ["withdrawals-view", ["withdrawals"]],
                  ["products-view", ["products"]], ["reviews-view", ["reviews"]],
                  ["coupons-view", ["couponTemplates"]], ["users-view", ["users"]]];
// Where the reports are drawn (index.html), each redrawn whole by load().
const REPORT_CHARTS = ["chart-traffic", "chart-orders", "chart-gmv", "funnel", "regions", "by-category", "by-brand",
                       "by-price-band", "top-products", "retention"];
const PAGE_SIZE = 20;
const SKU_PRICE_MAX_FEN = 100_000_000;  // services/common/formats.py: a SKU's price and crossed-out price at most
const SVG = "http://www.w3.org/2000/svg";
const LABEL_WIDTH = 22;  // a bar's label at most, in half-width characters (a Chinese one is two): 124px at 11px
const COLORS = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626"];

// The overview cards: the figure's name in the API, its label, and whether it is money (fen).
const CARDS = [
  ["page_views", "Page views"], ["unique_visitors", "Unique visitors"], ["visits", "Visits"],
  ["new_users", "New users"], ["active_users", "Active users"], ["orders", "Orders"],
  ["paid_orders", "Paid orders"], ["paying_users", "Paying users"], ["gmv_fen", "GMV", true],
  ["net_gmv_fen", "Net GMV", true], ["refund_fen", "Refunds", true],
  ["average_order_value_fen", "Average order value", true], ["recharge_fen", "Recharges", true],
  ["product_views", "Product views"],
];

const $ = (id) => document.getElementById(id);
// Money is integer fen: yuan and fen are split with integer arithmetic, never through a float.
const yuan = (fen) => {
  const whole = BigInt(fen), sign = whole < 0n ? "-" : "", abs = whole < 0n ? -whole : whole;
  return `${sign}¥${(abs / 100n).toLocaleString("en-US")}.${String(abs % 100n).padStart(2, "0")}`;
};
const count = (n) => n.toLocaleString("en-US");
const percent = (rate) => rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + "%";

// Session: tokens live in this tab only.

const session = {
  get access() { return sessionStorage.getItem("access_token"); },
  get refresh() { return sessionStorage.getItem("refresh_token"); },
  save(reply) {
    sessionStorage.setItem("access_token", reply.access_token);
    sessionStorage.setItem("refresh_token", reply.refresh_token);
    sessionStorage.setItem("user", reply.user.nickname || reply.user.phone);
    sessionStorage.setItem("roles", JSON.stringify(reply.user.roles || []));
  },
  get roles() { return JSON.parse(sessionStorage.getItem("roles") || "[]"); },
  clear() { sessionStorage.clear(); },
};

// An answer in the API's error format: {"error": {"code", "message", "details"?, "request_id"}}.
class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.details = error.details || null;
    this.requestId = error.request_id || "";
  }

  describe() {
    const details = this.details ? " " + JSON.stringify(this.details) : "";
    const request = this.requestId ? ` (request ${this.requestId})` : "";
    return `${this.code || "HTTP " + this.status}: ${this.message}${details}${request}`;
  }
}

const can = (action) => ROLES[action].some((role) => session.roles.includes(role));
const describe = (error) => error instanceof ApiError ? error.describe() : error.message;

// Each session in this page (from one login to the login shown again) has its number: showLogin starts the next one.
let sessionNumber = 0;

// The promise's outcome while the session that waited for it lasts; once that session has ended it never settles, so
// nothing awaiting it (a list, the reports, an export) draws into the page of, or asks on behalf of, the next staff
// member.
function whileLoggedIn(promise) {
  const asked = sessionNumber;
  const current = (settle) => (outcome) => { if (asked === sessionNumber) settle(outcome); };
  return new Promise((resolve, reject) => promise.then(current(resolve), current(reject)));
}

// An API call: its answer (JSON, or the file as a Blob with `blob`), or an ApiError. `anonymous`: a public route asked
// without the token, as a visitor would.
const call = (path, options = {}) => whileLoggedIn(send(path, options, sessionNumber));

async function send(path, options, asked, retried = false) {
  const headers = Object.assign({}, options.headers || {});
  if (session.access && !options.anonymous) headers.Authorization = "Bearer " + session.access;
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method: options.method || "GET", headers,
    body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
  });
  // A 401 for a session already ended is not the next one's: their refresh token and login stay as they are.
  if (response.status === 401 && asked === sessionNumber && !retried && session.refresh && await refreshOnce()) {
    return send(path, options, asked, true);
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === 401 && asked === sessionNumber) showLogin("Your session ended; log in again.");
    throw new ApiError(response.status, body);
  }
  return options.blob ? response.blob() : response.json();
}

// One refresh at a time per session: calls refused together (the dashboard's reports) share it. Each would otherwise
// present the same refresh token, and the user service takes a spent one presented again for a stolen one and ends the
// whole session (REFRESH_TOKEN_REUSED).
let refreshing = null;  // {asked: the session it is for, done: its promise}

function refreshOnce() {
  if (!refreshing || refreshing.asked !== sessionNumber) {
    const mine = {asked: sessionNumber, done: null};
    mine.done = refreshSession(mine.asked).finally(() => { if (refreshing === mine) refreshing = null; });
    refreshing = mine;
  }
  return refreshing.done;
}

// A refresh answered after its session ended (logout, the next staff member logged in) is dropped: saving it would hand
// the next one the previous one's tokens and roles.
async function refreshSession(asked) {
  const response = await fetch(API + "/auth/refresh", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({refresh_token: session.refresh}),
  });
  if (!response.ok || asked !== sessionNumber) return false;
  const tokens = await response.json();
  if (asked !== sessionNumber) return false;
  session.save(tokens);
  return true;
}

// Login and logout

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const changing = !$("password-change").hidden;
  const credentials = {phone: $("phone").value.trim(), password: $("password").value};
  if (changing) Object.assign(credentials, {new_password: $("new-password").value, sms_code: $("reset-code").value});
  try {
    const reply = await fetch(API + "/auth/login/password", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(credentials),
    });
    const body = await reply.json();
    if (!reply.ok) throw new ApiError(reply.status, body);
    if (!body.user.roles.some((role) => STAFF_ROLES.includes(role))) {
      await endSession(body.refresh_token);  // the login started a session: end it rather than leave it live, unused
      throw new Error("This account is not staff: the console is for admins, operators, customer service and finance.");
    }
    session.save(body);
    askPasswordChange(false);
    $("password").value = "";
    showConsole();
  } catch (error) {
    if (error instanceof ApiError && error.code === "PASSWORD_CHANGE_REQUIRED") {
      askPasswordChange(true);
      $("login-error").textContent = "An admin set this password. Choose your own, send the code to your phone and " +
                                     "log in again with both.";
      return;
    }
    $("login-error").textContent = describe(error);
  }
}

// A password an admin set logs in only to be changed (403 PASSWORD_CHANGE_REQUIRED): the new one and a "reset" code
// sent to the account's phone go with the next try. Hidden and emptied again once logged in, or the login shown anew.
function askPasswordChange(asked) {
  $("password-change").hidden = !asked;
  $("new-password").required = $("reset-code").required = asked;
  if (!asked) $("new-password").value = $("reset-code").value = "";
}

async function sendResetCode() {
  $("login-error").textContent = "";
  try {
    const reply = await fetch(API + "/auth/sms-codes", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({phone: $("phone").value.trim(), purpose: "reset"}),
    });
    const body = await reply.json();
    if (!reply.ok) throw new ApiError(reply.status, body);
    $("login-error").textContent = "The code is on its way to your phone.";
  } catch (error) {
    $("login-error").textContent = describe(error);
  }
}

async function logout() {
  const refresh = session.refresh;
  session.clear();
  if (refresh) endSession(refresh);
  showLogin("");
}

// End the session of this refresh token at the server (its access tokens too); a failure leaves it to expire.
function endSession(refresh) {
  return fetch(API + "/auth/logout", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify({refresh_token: refresh})}).catch(() => {});
}

function showLogin(message) {
  // Whatever brought the login back (logging out, or a 401 the refresh could not mend: an ended session, or the
  // refresh refused for now, its token still good), the tokens go: else reloading the page would carry on the last
  // staff member's session for whoever sits down next.
  session.clear();
  sessionNumber += 1;  // what the last session still waits for is dropped (whileLoggedIn)
  for (const [view] of SECTIONS) {
    $(view).hidden = true;
    delete $(view).dataset.opened;
  }
  // Nothing the last staff member opened stays for the next one, who may not be let read it: the lists and details,
  // the reports' figures, and the exported files (their blob: URLs would keep the file for this page's lifetime).
  for (const link of $("exports").querySelectorAll("a[href^='blob:']")) URL.revokeObjectURL(link.href);
  // A create form still open goes with its Idempotency-Key: the next staff member's create is their own.
  for (const id of [...Object.keys(LISTS), "order-detail", "case-detail", "user-detail", "product-detail", "stuck",
                    "exports", "cards", "ledger-mismatches",
                    "product-create", "coupon-create", ...REPORT_CHARTS]) {
    $(id).replaceChildren();
  }
  delete document.body.dataset.loaded;
  $("status").textContent = "";
  // Nor what they searched for: every search, filter and form field back as the page first had it, each list at its
  // first page, no count or error under any.
  for (const form of document.querySelectorAll("main form:not(#login-form)")) form.reset();
  setPeriod(30);
  for (const [name, list] of Object.entries(LISTS)) {
    pages[name] = 1;
    $(list.count).textContent = $(list.error).textContent = "";
    document.querySelector(`.pager[data-for="${name}"]`).replaceWith(pager(name));
  }
  for (const id of ["load-error", "stuck-error", "product-notice", "coupon-notice", "withdrawal-notice",
                    "review-notice", "ledger-progress", "ledger-error"]) {
    $(id).textContent = "";
  }
  delete $("ledger-progress").dataset.state;
  for (const id of ["order-detail", "case-detail", "user-detail", "product-detail"]) $(id).hidden = true;
  pendingCancel = null;
  ledgerCheck = null;  // its walk waits for an answer that never comes (whileLoggedIn)
  $("ledger-check").disabled = false;
  $("ledger-stop").disabled = true;
  followed.clear();
  downloadWhenDone.clear();
  // A create form still loading its lists when the session ended never gets them (whileLoggedIn): its button is free.
  $("new-product").disabled = $("new-coupon").disabled = false;
  $("sections").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  askPasswordChange(false);
  $("login-error").textContent = message;
}

// Sections: a button for each one the staff member's roles open; the first one is shown.

function showConsole() {
  $("login-view").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = sessionStorage.getItem("user") || "";
  $("sections").hidden = false;
  const open = SECTIONS.filter(([, actions]) => actions.some(can)).map(([view]) => view);
  for (const button of document.querySelectorAll("[data-section]")) {
    button.hidden = !open.includes(button.dataset.section);
  }
  $("new-product").hidden = !can("createProduct");
  $("new-coupon").hidden = !can("createTemplate");
  for (const kind of WALLET_REPORTS) {
    const option = $("export-kind").querySelector(`option[value="${kind}"]`);
    option.hidden = option.disabled = !can("walletReports");
  }
  if (open.length) showSection(open[0]);
}

function showSection(view) {
  for (const [other] of SECTIONS) $(other).hidden = other !== view;
  for (const button of document.querySelectorAll("[data-section]")) {
    button.classList.toggle("current", button.dataset.section === view);
  }
  const first = !$(view).dataset.opened;
  $(view).dataset.opened = "yes";
  if (view === "dashboard-view" && first) {
    load();
    loadList("reports", 1);
  }
  if (view === "orders-view" && first) loadList("orders", 1);
  if (view === "aftersales-view" && first) loadList("cases", 1);
  if (view === "money-view") loadMoney();
  if (view === "withdrawals-view") $("ledger-audit-panel").hidden = !can("ledgerAudit");
  if (view === "withdrawals-view" && first) loadList("withdrawals", 1);
  if (view === "reviews-view" && first) loadList("reviews", 1);
  if (view === "products-view" && first) loadList("products", 1);
  if (view === "coupons-view" && first) loadList("coupons", 1);
}

// The period: Asia/Shanghai days, like every figure.

function shanghaiToday() {
  return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

function daysBefore(day, n) {
  const date = new Date(day + "T00:00:00Z");
  date.setUTCDate(date.getUTCDate() - n);
  return date.toISOString().slice(0, 10);
}

function setPeriod(days) {
  $("to").value = shanghaiToday();
  $("from").value = daysBefore($("to").value, days - 1);
}

function periodQuery() {
  return `from=${$("from").value}&to=${$("to").value}`;
}

// Loading everything of the period

async function load() {
  $("load-error").textContent = "";
  $("status").textContent = "Loading…";
  const query = periodQuery();
  try {
    const [overview, preferences, regions, funnel, retention] = await Promise.all(
      ["overview", "preferences", "regions", "funnel", "retention"].map((r) => call(`/admin/analytics/${r}?${query}`)));
    drawCards(overview);
    drawTrends(overview);
    drawFunnel(funnel);
    drawRegions(regions);
    drawRetention(retention);
    drawPreferences(preferences, await preferenceNames(preferences));
    $("status").textContent = `${overview.from} – ${overview.to}`;
    document.body.dataset.loaded = query;
  } catch (error) {
    $("status").textContent = "";
    $("load-error").textContent = describe(error);
  }
}

function drawCards(overview) {
  const cards = $("cards");
  cards.replaceChildren();
  for (const [name, label, money] of CARDS) {
    const card = element("div", {class: "card", "data-figure": name, "data-value": overview[name]});
    card.append(element("div", {class: "label"}, label),
                element("div", {class: "value"}, money ? yuan(overview[name]) : count(overview[name])));
    cards.append(card);
  }
}

function drawTrends(overview) {
  const days = overview.days;
  lineChart($("chart-traffic"), days, [["page_views", "Page views"], ["unique_visitors", "Unique visitors"],
                                        ["visits", "Visits"], ["active_users", "Active users"]], count);
  lineChart($("chart-orders"), days, [["orders", "Orders"], ["paid_orders", "Paid orders"],
                                       ["paying_users", "Paying users"], ["new_users", "New users"]], count);
  lineChart($("chart-gmv"), days, [["gmv_fen", "GMV"], ["net_gmv_fen", "Net GMV"], ["refund_fen", "Refunds"]], yuan);
}

function drawFunnel(funnel) {
  const steps = [["viewed", "Viewed"], ["added_to_cart", "Added to cart"], ["ordered", "Ordered"], ["paid", "Paid"]];
  const rows = steps.map(([name, label], i) => {
    const previous = i === 0 ? null : funnel[steps[i - 1][0]];
    const note = previous ? ` (${percent(funnel[name] / previous)})` : "";
    return {label, value: funnel[name], text: count(funnel[name]) + note};
  });
  barChart($("funnel"), rows, count);
}

function drawRegions(regions) {
  barChart($("regions"), regions.provinces.filter((p) => p.gmv_fen > 0).map((p) => ({
    label: p.province || "(unknown)", value: p.gmv_fen,
    text: `${yuan(p.gmv_fen)} · ${(p.gmv_share * 100).toFixed(1)}% · ${count(p.paid_orders)} orders`})), yuan);
}

// The reports carry ids only: the names they stand for, each read in parallel, and each one missing (a deleted product,
// a failed call) left out, its id shown instead. Categories and brands from the catalogue (GET /categories, /brands);
// the top products (ten) each from its detail: GET /admin/products/{id} (any status) for those who may read it (the
// roles of "products", EDITORS), else the shop's public page (on the shelf only), asked without the token, so that no
// staff member's browsing is recorded.
async function preferenceNames(preferences) {
  const quietly = (promise) => promise.catch(() => null);
  const product = (id) => can("products") ? call(`/admin/products/${id}`) : call(`/products/${id}`, {anonymous: true});
  const [categories, brands, ...products] = await Promise.all([
    quietly(call("/categories")), quietly(call("/brands")),
    ...preferences.top_products.map((s) => quietly(product(s.product_id)))]);
  const every = (tree) => tree.flatMap((c) => [[c.id, c.name], ...every(c.children)]);  // the tree, every depth
  return {
    categories: new Map(categories ? every(categories.items) : []),
    brands: new Map(brands ? brands.items.map((b) => [b.id, b.name]) : []),
    products: new Map(preferences.top_products.map((s, i) => [s.product_id, products[i] && products[i].name])),
  };
}

function drawPreferences(preferences, names) {
  const sales = (rows, label) => rows.map((s) => ({label: label(s), value: s.sales_fen,
                                                   text: `${yuan(s.sales_fen)} · ${count(s.paid_orders)} orders`}));
  const named = (map, id, noun) => map.get(id) || `${noun} ${id}`;
  barChart($("by-category"), sales(preferences.by_category, (s) => named(names.categories, s.category_id, "Category")),
           yuan);
  barChart($("by-brand"), sales(preferences.by_brand, (s) => s.brand_id ? named(names.brands, s.brand_id, "Brand")
                                                                         : "No brand"), yuan);
  barChart($("by-price-band"), sales(preferences.by_price_band, (s) =>
    s.max_fen === null ? `${yuan(s.min_fen)}+` : `${yuan(s.min_fen)}–${yuan(s.max_fen)}`), yuan);
  barChart($("top-products"), sales(preferences.top_products, (s) => named(names.products, s.product_id, "Product")),
           yuan);
}

function drawRetention(retention) {
  const cohorts = retention.cohorts.filter((c) => c.new_users > 0);
  if (!cohorts.length) {
    $("retention").replaceChildren(element("p", {class: "muted"}, "No one registered in this period."));
    return;
  }
  const rates = element("table", {class: "retention"});
  table(rates, ["Registered", "New users", "Day 1", "Day 7", "Day 30"], cohorts.map((cohort) => {
    const tr = row([cohort.date, count(cohort.new_users)]);
    for (const n of ["d1", "d7", "d30"]) {
      const rate = cohort[`${n}_rate`];
      const cell = element("td", {class: "rate", title: `${cohort[n]} of ${cohort.new_users}`}, percent(rate));
      if (rate !== null) cell.style.backgroundColor = `hsl(217, 91%, ${Math.round(95 - rate * 45)}%)`;
      tr.append(cell);
    }
    return tr;
  }));
  $("retention").replaceChildren(rates);
}

// Charts: plain SVG

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function lineChart(container, days, series, format) {
  const width = 640, height = 220, left = 64, right = 12, top = 12, bottom = 28;
  const max = Math.max(1, ...days.flatMap((d) => series.map(([name]) => d[name])));
  const x = (i) => left + (days.length === 1 ? (width - left - right) / 2 : i * (width - left - right) / (days.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "line-chart", role: "img"});
  for (const fraction of [0, 0.5, 1]) {
    chart.append(svg("line", {x1: left, x2: width - right, y1: y(max * fraction), y2: y(max * fraction), class: "grid"}),
                 svg("text", {x: left - 6, y: y(max * fraction) + 4, class: "axis", "text-anchor": "end"},
                     format(Math.round(max * fraction))));
  }
  const ticks = [...new Set([0, Math.floor((days.length - 1) / 2), days.length - 1])];
  for (const i of ticks) {
    chart.append(svg("text", {x: x(i), y: height - 8, class: "axis", "text-anchor": "middle"}, days[i].date.slice(5)));
  }
  series.forEach(([name], s) => {
    const color = COLORS[s % COLORS.length];
    chart.append(svg("polyline", {points: days.map((d, i) => `${x(i)},${y(d[name])}`).join(" "), fill: "none",
                                  stroke: color, "stroke-width": 2, "data-series": name}));
    days.forEach((d, i) => {
      const dot = svg("circle", {cx: x(i), cy: y(d[name]), r: 3, fill: color});
      dot.append(svg("title", {}, `${d.date} ${series[s][1]}: ${format(d[name])}`));
      chart.append(dot);
    });
  });
  const legend = element("div", {class: "legend"});
  series.forEach(([, label], s) => {
    const swatch = element("span", {class: "swatch"});
    swatch.style.backgroundColor = COLORS[s % COLORS.length];
    const item = element("span", {class: "item"});
    item.append(swatch, document.createTextNode(label));
    legend.append(item);
  });
  container.replaceChildren(chart, legend);
}

// A long label (a product's name) cut to fit beside its bar; the bar's title (hovered) has it whole.
function fitted(label) {
  const wide = (character) => character.codePointAt(0) >= 0x2E80 ? 2 : 1;
  const characters = [...label];
  if (characters.reduce((width, character) => width + wide(character), 0) <= LABEL_WIDTH) return label;
  let kept = "", width = 1;  // the "…"
  for (const character of characters) {
    if (width + wide(character) > LABEL_WIDTH) break;
    kept += character;
    width += wide(character);
  }
  return kept + "…";
}

function barChart(container, rows, format) {
  if (rows.length === 0) {
    container.replaceChildren(element("p", {class: "muted"}, "Nothing in this period."));
    return;
  }
  const width = 560, bar = 20, gap = 8, labelWidth = 130, textWidth = 210, height = rows.length * (bar + gap);
  const max = Math.max(1, ...rows.map((r) => r.value));
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "bar-chart", role: "img"});
  rows.forEach((row, i) => {
    const top = i * (bar + gap);
    const length = Math.max(1, (width - labelWidth - textWidth) * row.value / max);
    chart.append(svg("text", {x: labelWidth - 6, y: top + bar / 2 + 4, class: "label", "text-anchor": "end"},
                     fitted(row.label)));
    const rect = svg("rect", {x: labelWidth, y: top, width: length, height: bar, rx: 3,
                              fill: COLORS[0], "data-value": row.value});
    rect.append(svg("title", {}, `${row.label}: ${row.text || format(row.value)}`));
    chart.append(rect, svg("text", {x: labelWidth + length + 6, y: top + bar / 2 + 4, class: "bar-text"},
                           row.text || format(row.value)));
  });
  container.replaceChildren(chart);
}

// Exports: a job on the server, listed with the staff member's others (GET /admin/reports: a reload loses none); one
// queued or running is followed until it ends, its row redrawn. A done one's file is fetched with the token and handed
// to the browser; the link stays under the list (`exports`) until the login is shown again.

async function exportReport(event) {
  event.preventDefault();
  const kind = $("export-kind").value, format = $("export-format").value;
  await act($("export-form"), async () => {
    const job = await call("/admin/reports", {method: "POST",
                                              json: {kind, format, from: $("from").value, to: $("to").value}});
    downloadWhenDone.add(job.id);
    follow(job.id);
    loadList("reports", 1);
  });
}

// The ids of the jobs followed now, and of those this page asked for, downloaded once done.
const followed = new Set(), downloadWhenDone = new Set();

// A job followed every second until it ends, its row (when on the page shown) drawn anew each time.
async function follow(id) {
  if (followed.has(id)) return;
  followed.add(id);
  let job;
  try {
    do {
      await whileLoggedIn(new Promise((resolve) => setTimeout(resolve, 1000)));
      job = await call(`/admin/reports/${id}`);
      const shown = $("reports").querySelector(`tr[data-report-id="${id}"]`);
      if (shown) shown.replaceWith(reportRow(job));
    } while (underWay(job));
    if (job.status === "done" && downloadWhenDone.delete(id)) await download(job);
  } catch (error) {
    $("reports-error").textContent = `Export ${id}: ${describe(error)}`;
  } finally {
    followed.delete(id);
  }
}

const underWay = (job) => job.status === "queued" || job.status === "running";

// What an export is called: the report's name as the form offers it, its period and format.
function reportName(job) {
  const option = $("export-kind").querySelector(`option[value="${job.kind}"]`);
  return `${option ? option.textContent : job.kind} ${job.from}–${job.to} (${job.format})`;
}

async function download(job) {
  const file = await call(job.file_url.slice(API.length), {blob: true});
  const link = element("a", {href: URL.createObjectURL(file),
                             download: `${job.kind}-${job.from}-${job.to}.${job.format}`},
                       `${reportName(job)}: ${count(job.rows)} rows, download`);
  const item = element("li", {});
  item.append(link);
  $("exports").prepend(item);
  link.click();
}

// A job in the list; one under way is followed (once: follow() knows those it follows).
function reportRow(job) {
  const status = underWay(job) ? `${job.status} ${job.percent}%`
    : job.status === "failed" ? `failed: ${job.error || "the export failed"}` : job.status;
  const tr = row([String(job.id), reportName(job), status, count(job.rows), when(job.created_at), ""],
                 {"data-report-id": job.id, "data-status": job.status});
  if (job.file_url) {
    const outcome = element("span", {class: "outcome", role: "alert"});
    tr.lastChild.append(button("Download", (event) => attempt(event.target, outcome, () => download(job))), outcome);
  }
  if (underWay(job)) follow(job.id);
  return tr;
}

// Lists: a table of rows, paged ?page=&page_size= → {"items", "page", "page_size", "total"}. Each is named by its
// table's id; its search form filters it, its count and error show beside the form, its pager is built under it.
const LISTS = {
  orders: {
    path: "/admin/orders", form: "order-search", count: "order-count", error: "orders-error", noun: "orders",
    titles: ["Order no", "Status", "Placed", "Payable", "Refunded", "Lines", ""], row: orderRow,
    filters: () => {
      const to = $("order-to").value, from = $("order-from").value;
      return {status: $("order-status").value, order_no: $("order-no").value.trim(),
              user_id: $("order-user").value.trim(), created_from: from && dayStart(from),
              created_to: to && dayStart(to, 1)};
    },
  },
  cases: {
    path: "/admin/after-sales", form: "case-search", count: "case-count", error: "cases-error", noun: "cases",
    titles: ["Case no", "Order no", "Type", "Status", "Refund", "Opened", ""], row: caseRow,
    filters: () => ({status: $("case-status").value, type: $("case-type").value,
                     order_no: $("case-order-no").value.trim()}),
  },
  // The API answers ABNORMAL refunds (only staff move one) and then PENDING ones (the longest waiting are those the
  // fallback job gets no usable answer about) first, each longest waiting first: "Waiting since" is their updated_at.
  refunds: {
    path: "/admin/refunds", form: "refund-search", count: "refund-count", error: "refunds-error", noun: "refunds",
    titles: ["Refund no", "Order no", "Source", "Status", "Amount", "Points back", "Channel", "Started", "Waiting since",
             "Started by", "Reason", ""], row: refundRow,
    filters: () => ({status: $("refund-status").value, source: $("refund-source").value,
                     order_no: $("refund-order-no").value.trim()}),
  },
  "wallet-reviews": {
    path: "/admin/wallet-reviews", form: "wallet-search", count: "wallet-count", error: "wallet-error",
    noun: "charges", titles: ["Order no", "Problem", "Charged wallet of", "Charged", "Order's shopper", "Payable",
                              "Status", "Flagged", "Resolution"], row: walletReviewRow,
    filters: () => ({status: $("wallet-status").value}),
  },
  // The API answers them oldest first: those waiting longest are decided first.
  withdrawals: {
    path: "/admin/withdrawals", form: "withdrawal-search", count: "withdrawal-count", error: "withdrawals-error",
    noun: "withdrawals", titles: ["Withdrawal no", "Shopper", "Status", "Amount", "Bonus forfeited", "Payout",
                                  "Requested", "Decided", "Note (staff only)", "For the shopper", ""],
    row: withdrawalRow,
    filters: () => ({status: $("withdrawal-status").value}),
  },
  products: {
    path: "/admin/products", form: "product-search", count: "product-count", error: "products-error",
    noun: "products", titles: ["Id", "Name", "Status", "On shelf", "Price", "Category", "Brand", "Updated", ""],
    row: productRow, filters: () => ({q: $("product-q").value.trim(), status: $("product-status").value}),
  },
  // Every review, hidden ones too, newest first.
  reviews: {
    path: "/admin/reviews", form: "review-search", count: "review-count", error: "reviews-error", noun: "reviews",
    titles: ["Id", "Product", "Spec", "Stars", "Review", "Photos", "Buyer", "Order line", "Posted", "Status", ""],
    row: reviewRow,
    filters: () => ({product_id: $("review-product").value.trim(), rating: $("review-rating").value,
                     hidden: $("review-hidden").value}),
  },
  // The staff member's own export jobs, newest first.
  reports: {
    path: "/admin/reports", form: "report-search", count: "report-count", error: "reports-error", noun: "exports",
    titles: ["Id", "Report", "Status", "Rows", "Created", ""], row: reportRow, filters: () => ({}),
  },
  coupons: {
    path: "/admin/coupon-templates", form: "coupon-search", count: "coupon-count", error: "coupons-error",
    noun: "templates", titles: ["Id", "Name", "Each coupon", "Claimed", "Available", "In orders", "Used", "Expired",
                                "Valid", "Status", "Created by", "Approved by", ""], row: couponRow,
    filters: () => ({status: $("coupon-status").value}),
  },
  // Nothing is listed until staff search (each search is audited, and needs a criterion); the criteria go in a JSON
  // body (`body`: POST), so a phone number never appears in a URL that a proxy may log.
  users: {
    path: "/admin/users/search", body: true, form: "user-search", count: "user-count", error: "users-error",
    noun: "users", titles: ["User id", "Nickname", "Phone", "Roles", "Registered", ""], row: userRow,
    filters: () => ({phone: $("user-phone").value.trim(), id: $("user-id").value.trim() && Number($("user-id").value),
                     nickname: $("user-nickname").value.trim()}),
  },
};
const pages = Object.fromEntries(Object.keys(LISTS).map((name) => [name, 1]));

// One page of a list, with the filters its form holds now. The table keeps what it asked (data-query) and the count
// how often it was drawn (data-loads), so a test can wait for the answer.
async function loadList(name, page) {
  const list = LISTS[name];
  $(list.error).textContent = "";
  try {
    const parameters = Object.assign({page, page_size: PAGE_SIZE}, list.filters());
    const asked = query(parameters);
    const reply = await (list.body ? call(list.path, {method: "POST", json: given(parameters)})
                                   : call(`${list.path}?${asked}`));
    table($(name), list.titles, reply.items.map(list.row));
    $(name).dataset.query = asked;
    $(list.count).textContent = `${count(reply.total)} ${list.noun}`;
    $(list.count).dataset.loads = Number($(list.count).dataset.loads || 0) + 1;
    showPage(name, reply);
  } catch (error) {
    $(list.error).textContent = describe(error);
  }
}

// The page of a list shown now, read again (after a staff action changed one of its rows).
const reloadList = (name) => loadList(name, pages[name]);

// Previous · page n of m · Next, built under each list's table.
function pager(name) {
  const turn = (step) => () => loadList(name, Math.max(1, pages[name] + step));
  const node = element("div", {class: "pager", "data-for": name});
  node.append(button("Previous", turn(-1), {"data-step": "-1"}), element("span", {}),
              button("Next", turn(1), {"data-step": "1"}));
  return node;
}

function showPage(name, reply) {
  pages[name] = reply.page;
  const controls = document.querySelector(`.pager[data-for="${name}"]`);
  const last = Math.max(1, Math.ceil(reply.total / reply.page_size));
  controls.querySelector("span").textContent = `page ${reply.page} of ${last}`;
  controls.querySelector('[data-step="-1"]').disabled = reply.page <= 1;
  controls.querySelector('[data-step="1"]').disabled = reply.page >= last;
}

function table(container, titles, rows) {
  const head = element("tr", {});
  for (const title of titles) head.append(element("th", {}, title));
  container.replaceChildren(head, ...rows);
}

function row(cells, attributes = {}) {
  const tr = element("tr", attributes);
  for (const cell of cells) {
    const td = element("td", {});
    if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? "" : cell;
    tr.append(td);
  }
  return tr;
}

function button(label, onClick, attributes = {}) {
  const node = element("button", Object.assign({type: "button"}, attributes), label);
  node.addEventListener("click", onClick);
  return node;
}

const when = (iso) => iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "";

// A Shanghai day in a date input → the instant it starts, for created_from / created_to (exclusive).
const dayStart = (day, after = 0) => `${daysBefore(day, -after)}T00:00:00+08:00`;

// The parameters given a value (a form's empty fields left out).
const given = (parameters) => Object.fromEntries(Object.entries(parameters).filter(([, value]) =>
  value !== "" && value !== undefined));

function query(parameters) {
  return new URLSearchParams(given(parameters)).toString();
}

// A staff action on the server: its button waits, the answer or the error shows under the form.
async function act(form, run) {
  return attempt(form.querySelector("button[type=submit]"), form.querySelector(".outcome"), run);
}

// One staff action: its control disabled while it runs, its outcome cleared first and the error shown there.
async function attempt(control, output, run) {
  output.className = "outcome";
  output.textContent = "";
  control.disabled = true;
  try {
    await run();
  } catch (error) {
    output.className = "outcome error";
    output.textContent = describe(error);
  } finally {
    control.disabled = false;
  }
}

// A staff action's form: its fields ([name, label, attributes], {tag: "select"} for a list), its submit button and,
// for a decision, a second button (`reject`) that runs the action with approve false. `run(values, approve)` is the
// action, given the fields' trimmed values by name; it runs through act(), so its button waits and the answer or the
// error shows under the form.
function actionForm({id, legend, fields = [], submit, reject, run}) {
  const form = element("form", {id, class: "action"});
  if (legend) form.append(element("h3", {}, legend));
  for (const [name, label, attributes = {}] of fields) {
    const input = element(attributes.tag || "input", Object.assign({name}, attributes));
    input.removeAttribute("tag");
    const wrap = element("label", {}, label + " ");
    wrap.append(input);
    form.append(wrap);
  }
  const values = () => Object.fromEntries([...new FormData(form)].map(([name, value]) => [name, value.trim()]));
  const go = (approve) => act(form, () => run(values(), approve));
  form.append(element("button", {type: "submit"}, submit));
  if (reject) form.append(button(reject, () => go(false), {class: "secondary"}));
  form.append(element("p", {class: "outcome", role: "alert"}));
  form.addEventListener("submit", (event) => { event.preventDefault(); go(true); });
  return form;
}

// An order or a case opened in its detail panel: "Loading…" until drawn, or the error in its place.
async function openDetail(id, path, draw) {
  const detail = $(id);
  detail.hidden = false;
  detail.replaceChildren(element("p", {class: "muted"}, "Loading…"));
  try {
    draw(await call(path));
  } catch (error) {
    detail.replaceChildren(element("p", {class: "error", role: "alert"}, describe(error)));
  }
}

function history(steps) {
  const list = element("table", {class: "rows history"});
  table(list, ["When", "Status", "By", "Recorded", "Shopper sees"], steps.map((step) => row([
    when(step.at), step.status, step.actor, step.reason,
    step.shopper_visible ? (step.shopper_reason || "(the status only)") : "staff only",
  ], {class: step.shopper_visible ? "shopper" : "staff-only"})));
  return list;
}

// Orders

function orderRow(order) {
  const open = button("Open", () => openDetail("order-detail", `/admin/orders/${order.id}`, drawOrder));
  return row([order.order_no, order.status, when(order.created_at), yuan(order.payable_fen), yuan(order.refunded_fen),
              String(order.lines.length), open], {"data-order-id": order.id});
}

function drawOrder(order) {
  const detail = $("order-detail");
  detail.dataset.orderId = order.id;
  const lines = element("table", {class: "rows", id: "order-lines"});
  table(lines, ["Line", "Item", "Spec", "Unit price", "Quantity", "Total"], order.lines.map((line) => row([
    String(line.id), line.name, line.spec, yuan(line.price_fen), String(line.quantity),
    yuan(BigInt(line.price_fen) * BigInt(line.quantity))])));
  const a = order.amounts;
  const amounts = element("table", {class: "rows amounts", id: "order-amounts"});
  table(amounts, ["Items", "Level discount", "Coupon", "Points", "Freight", "Payable", "Refunded"], [row([
    yuan(a.items_total_fen), yuan(a.level_discount_fen), yuan(a.coupon_discount_fen), yuan(a.points_discount_fen),
    yuan(a.freight_fen), yuan(a.payable_fen), yuan(order.refunded_fen)])]);
  const shipments = element("table", {class: "rows", id: "order-shipments"});
  table(shipments, ["Parcel", "Carrier", "Tracking no", "Shipped", "Units (line × quantity)"],
        order.shipments.map((s) => row([s.shipment_no, s.carrier, s.tracking_no, when(s.shipped_at),
                                         s.lines.map((l) => `${l.line_id} × ${l.quantity}`).join(", ")])));
  const address = order.address;
  detail.replaceChildren(
    element("h2", {}, `Order ${order.order_no} · ${order.status}`),
    element("p", {class: "muted"}, `Placed ${when(order.created_at)} · paid ${when(order.paid_at) || "–"} via ` +
            `${order.pay_channel || "–"} · to ${address.name} ${address.phone}, ${address.province}${address.city}` +
            `${address.district}${address.detail}` + (order.note ? ` · note: ${order.note}` : "")),
    lines, amounts, element("h3", {}, "Shipments"),
    order.shipments.length ? shipments : element("p", {class: "muted"}, "Nothing shipped yet."),
    element("h3", {}, "Refunds"), orderRefunds(order.refunds),
    element("h3", {}, "History"), history(order.history), ...orderActions(order));
}

// The order's refunds, which only its detail (GET /admin/orders/{id}) carries: an action's answer has none.
function orderRefunds(refunds) {
  if (refunds === undefined) return element("p", {class: "muted"}, "Open the order again to see its refunds.");
  if (!refunds.length) return element("p", {class: "muted"}, "No refunds.");
  const list = element("table", {class: "rows", id: "order-refunds"});
  table(list, ["Refund no", "Source", "Status", "Amount", "Points back", "Channel", "Started", "Last change"],
        refunds.map((refund) => row([refund.refund_no, refund.source, refundStatus(refund), yuan(refund.amount_fen),
                                     count(refund.points_returned), refund.channel, when(refund.created_at),
                                     when(refund.updated_at)], {"data-refund-no": refund.refund_no})));
  return list;
}

function orderActions(order) {
  const forms = [];
  if (order.status === "PAID" && can("ship")) {
    forms.push(actionForm({
      id: "ship-form", legend: "Ship every unit not shipped yet", submit: "Ship",
      fields: [["carrier", "Carrier", {required: "", maxlength: "32"}],
               ["tracking_no", "Tracking no", {required: "", maxlength: "64", pattern: "[A-Za-z0-9][A-Za-z0-9\\-]*"}]],
      run: async (values) => drawOrder(await call(`/admin/orders/${order.id}/ship`, {method: "POST", json: values}))}));
  }
  if (((order.status === "PAID" && order.shipments.length) || unshippedRefundOwed(order)) && can("cancelUnshipped")) {
    forms.push(cancelUnshippedForm(order));
  }
  if (order.status === "CANCEL_REQUESTED" && can("cancelReview")) {
    forms.push(actionForm({
      id: "cancel-review-form", legend: "The shopper asks to cancel",
      fields: [["reason", "Note (staff only)", {maxlength: "255"}]],
      submit: "Approve: refund the order", reject: "Reject: keep the order",
      run: async (values, approve) => drawOrder(await call(`/admin/orders/${order.id}/cancel-review`, {
        method: "POST", json: {approve, ...values}}))}));
  }
  if (cancellationRefundOwed(order) && can("cancelReview")) {
    forms.push(actionForm({
      id: "cancel-review-form", legend: "The approved cancellation's refund did not go through: the money is owed",
      fields: [["reason", "Note (staff only)", {maxlength: "255"}]], submit: "Refund the order again",
      run: async (values) => drawOrder(await call(`/admin/orders/${order.id}/cancel-review`, {
        method: "POST", json: {approve: true, ...values}}))}));
  }
  return forms;
}

// An approved cancellation (REFUNDING) with none of its refunds under way and not all of it refunded: the last was
// closed (WeChat Pay or the wallet refused it, or an admin closed an ABNORMAL one), or never started. Approving again
// starts a refund of what is left (POST /admin/orders/{id}/cancel-review). Open ones are retried from the refunds
// list instead. Only the order's detail lists its refunds.
function cancellationRefundOwed(order) {
  if (order.status !== "REFUNDING" || !order.refunds) return false;
  const open = order.refunds.some((refund) => refund.source !== "late_payment" &&
    (refund.status === "PENDING" || refund.status === "ABNORMAL"));
  return !open && order.refunded_fen < order.payable_fen;
}

// The units were cancelled but the last refund of them was closed (WeChat Pay refused it, or an admin closed it), and
// WeChat Pay paid none of them after its close: the money is owed, and cancel-unshipped (under a new key) starts that
// refund again. Only the order's detail lists its refunds (oldest first).
function unshippedRefundOwed(order) {
  const tried = (order.refunds || []).filter((refund) => refund.source === "cancel_unshipped");
  const last = tried[tried.length - 1];
  return Boolean(last && last.status === "CLOSED" && !tried.some((refund) => refund.paid_after_close_at));
}

// Cancelling the unshipped units moves money: one Idempotency-Key per staff action, kept for its retries (same
// order, same words) until the server has answered it, so a retry after a lost answer refunds nothing twice.
let pendingCancel = null;

// The server answered with a refusal (4xx, not 429): that action is over, another try is a new one under a new key.
const refused = (error) => error instanceof ApiError && error.status >= 400 && error.status < 500 &&
  error.status !== 429;

function cancelUnshippedForm(order) {
  return actionForm({
    id: "cancel-unshipped-form", ...(order.status === "PAID"
      ? {legend: "Cancel and refund the units not shipped", submit: "Cancel unshipped units"}
      : {legend: "The refund of the cancelled units was closed: the money is owed", submit: "Refund them again"}),
    fields: [["reason", "Why (staff only)", {required: "", maxlength: "255"}],
             ["shopper_reason", "For the shopper", {maxlength: "200"}]],
    run: async (body) => {
      const action = JSON.stringify([order.id, body]);
      if (!pendingCancel || pendingCancel.action !== action) pendingCancel = {action, key: crypto.randomUUID()};
      const key = pendingCancel.key;
      $("cancel-unshipped-form").dataset.idempotencyKey = key;
      let reply;
      try {
        reply = await call(`/admin/orders/${order.id}/cancel-unshipped`, {
          method: "POST", json: body, headers: {"Idempotency-Key": key}});
      } catch (error) {
        if (refused(error)) pendingCancel = null;
        throw error;
      }
      pendingCancel = null;
      drawOrder(reply);
    },
  });
}

// After-sales

function caseRow(c) {
  return row([c.case_no, c.order_no, c.type, c.status, yuan(c.refund_fen), when(c.created_at),
              button("Open", () => openCase(c.id))], {"data-case-id": c.id});
}

const openCase = (id) => openDetail("case-detail", `/admin/after-sales/${id}`, drawCase);

function drawCase(c) {
  const detail = $("case-detail");
  detail.dataset.caseId = c.id;
  const lines = element("table", {class: "rows", id: "case-lines"});
  table(lines, ["Line", "Item", "Spec", "Quantity", "Refund"], c.lines.map((line) => row([
    String(line.line_id), line.name, line.spec, String(line.quantity), yuan(line.amount_fen)])));
  const images = element("p", {class: "images"});
  for (const url of c.images) {
    const link = element("a", {href: url, target: "_blank", rel: "noopener noreferrer"}, "photo");
    images.append(link, document.createTextNode(" "));
  }
  const parcel = c.return_shipment ? `returned by ${c.return_shipment.carrier} ${c.return_shipment.tracking_no}` : "";
  detail.replaceChildren(
    element("h2", {}, `Case ${c.case_no} · ${c.type} · ${c.status}`),
    element("p", {}, `Order ${c.order_no} · opened ${when(c.created_at)} · refund ${yuan(c.refund_fen)}` +
            (c.refund_no ? ` (${c.refund_no})` : "") + (parcel ? ` · ${parcel}` : "")),
    element("p", {class: "reason"}, `The shopper wrote: ${c.reason}`), images, lines,
    element("h3", {}, "History"), history(c.history), ...caseActions(c));
}

function caseActions(c) {
  const forms = [];
  const canReject = c.status === "REQUESTED" || c.status === "RETURN_SHIPPED" ||
    (c.type === "refund_only" && c.status === "REFUND_FAILED");
  if (can("decide") && canReject) {
    const form = actionForm({
      id: "decision-form", legend: "Decide", submit: "Approve", reject: "Reject",
      fields: [["shopper_reason", "For the shopper", {maxlength: "200"}],
               ["note", "Note (staff only)", {maxlength: "255"}]],
      run: async (values, approve) => drawCase(await call(`/admin/after-sales/${c.id}/decision`, {
        method: "POST", json: {approve, ...values}}))});
    if (c.status !== "REQUESTED") form.querySelector("button[type=submit]").hidden = true;
    forms.push(form);
  }
  if (can("receive") && c.status === "RETURN_SHIPPED") {
    forms.push(actionForm({
      id: "receive-form", legend: "The returned parcel arrived", submit: "Received: restock and refund",
      fields: [["note", "What came back (staff only)", {maxlength: "255"}]],
      run: async (values) => drawCase(await call(`/admin/after-sales/${c.id}/receive`, {
        method: "POST", json: values}))}));
  }
  if (can("retryRefund") && ["REFUND_FAILED", "REFUND_ABNORMAL", "REFUNDING"].includes(c.status)) {
    forms.push(actionForm({
      id: "retry-form", legend: "The refund did not arrive", submit: "Retry the refund",
      run: async () => drawCase(await call(`/admin/after-sales/${c.id}/retry-refund`, {method: "POST"}))}));
  }
  if (can("closeRefund") && c.status === "REFUND_ABNORMAL" && c.refund_no) {
    forms.push(actionForm({
      id: "close-form", legend: `Close refund ${c.refund_no} (it can no longer be paid)`, submit: "Close the refund",
      fields: [["reason", "Why (staff only)", {required: "", maxlength: "255"}]],
      run: async (values) => {
        await closeRefund(c.refund_no, values.reason);
        drawCase(await call(`/admin/after-sales/${c.id}`));
      }}));
  }
  return forms;
}

// Stuck money: every refund, those needing staff first; after-sales refunds that did not arrive; and wallet
// charges that could not pay their order.

function loadMoney() {
  $("refunds-panel").hidden = !can("refunds");
  $("stuck-refunds").hidden = !can("afterSales");
  $("close-refund").hidden = !can("closeRefund");
  $("wallet-reviews-panel").hidden = !can("walletReviews");
  if (can("refunds")) loadList("refunds", 1);
  if (can("afterSales")) loadStuckRefunds();
  if (can("walletReviews")) loadList("wallet-reviews", 1);
}

// A refund's status; a CLOSED one WeChat Pay reported paid after all (paid_after_close_at) says so and when: its money
// did go back. Text only (row() sets textContent).
function refundStatus(refund) {
  return refund.paid_after_close_at ? `closed, paid by WeChat Pay after all at ${when(refund.paid_after_close_at)}`
    : refund.status;
}

function refundRow(refund) {
  const waiting = refund.status === "ABNORMAL" || refund.status === "PENDING";
  const tr = row([refund.refund_no, refund.order_no, refund.source, refundStatus(refund), yuan(refund.amount_fen),
                  count(refund.points_returned), refund.channel, when(refund.created_at),
                  waiting ? when(refund.updated_at) : "", refund.actor, refund.reason, ""], {"data-refund-no": refund.refund_no, "data-status": refund.status});
  const cell = tr.lastChild, outcome = element("span", {class: "outcome", role: "alert"});
  if (waiting && can("retryRefundByNo")) {
    cell.append(button("Retry", (event) => attempt(event.target, outcome, async () => {
      await call(`/admin/refunds/${encodeURIComponent(refund.refund_no)}/retry`, {method: "POST"});
      reloadList("refunds");
    })));
  }
  cell.append(outcome);
  if (refund.status === "ABNORMAL" && can("closeRefund")) cell.append(closeForm(refund));
  return tr;
}

function closeForm(refund) {
  return actionForm({
    id: `close-${refund.refund_no}`, submit: "Close",
    fields: [["reason", "Why (it can no longer be paid)", {required: "", maxlength: "255"}]],
    run: async (values) => {
      await closeRefund(refund.refund_no, values.reason);
      reloadList("refunds");
    }});
}

// An admin closes a refund that can no longer be paid: the order it belongs to comes back.
function closeRefund(refundNo, reason) {
  return call(`/admin/refunds/${encodeURIComponent(refundNo)}/close`, {method: "POST", json: {reason}});
}

async function loadStuckRefunds() {
  $("stuck-error").textContent = "";
  try {
    const found = await Promise.all(["REFUND_ABNORMAL", "REFUND_FAILED"].map((status) =>
      call("/admin/after-sales?" + query({status, page: 1, page_size: 100}))));
    const cases = found.flatMap((reply) => reply.items);
    const rows = cases.map((c) => {
      const tr = row([c.case_no, c.order_no, c.status, yuan(c.refund_fen), c.refund_no || "", when(c.updated_at), ""],
                     {"data-case-id": c.id});
      const cell = tr.lastChild, outcome = element("span", {class: "outcome", role: "alert"});
      if (can("retryRefund")) {
        cell.append(button("Retry", (event) => attempt(event.target, outcome, async () => {
          await call(`/admin/after-sales/${c.id}/retry-refund`, {method: "POST"});
          loadStuckRefunds();
        })));
      }
      cell.append(button("Open", () => { showSection("aftersales-view"); openCase(c.id); }), outcome);
      return tr;
    });
    table($("stuck"), ["Case no", "Order no", "Status", "Refund", "Refund no", "Since", ""], rows);
    if (!rows.length) $("stuck").append(row(["No after-sales refund is stuck."]));
    $("stuck").dataset.loads = Number($("stuck").dataset.loads || 0) + 1;
  } catch (error) {
    $("stuck-error").textContent = describe(error);
  }
}

async function closeRefundByNumber(event) {
  event.preventDefault();
  $("stuck-error").textContent = "";
  try {
    const order = await closeRefund($("close-refund-no").value.trim(), $("close-refund-reason").value.trim());
    $("stuck-error").className = "muted";
    $("stuck-error").textContent = `Closed: order ${order.order_no} is ${order.status}.`;
  } catch (error) {
    $("stuck-error").className = "error";
    $("stuck-error").textContent = describe(error);
  }
}

function walletReviewRow(review) {
  const tr = row([review.order_no, review.problem, `user ${review.user_id}`, yuan(review.amount_fen),
                  `user ${review.order_user_id}`, yuan(review.payable_fen), review.status, when(review.flagged_at),
                  review.status === "OPEN" ? "" : `${review.resolved_by} ${when(review.resolved_at)}: ${review.note}`],
                 {"data-review-id": review.id});
  if (review.status === "OPEN" && can("resolveWallet")) tr.lastChild.append(resolveForm(review));
  return tr;
}

function resolveForm(review) {
  const form = actionForm({
    id: `resolve-${review.id}`, submit: "Resolve",
    fields: [["resolution", "", {tag: "select"}], ["reason", "Why", {required: "", maxlength: "255"}]],
    run: async (values) => {
      await call(`/admin/wallet-reviews/${review.id}/resolve`, {method: "POST", json: values});
      reloadList("wallet-reviews");
    }});
  form.elements.resolution.append(element("option", {value: "credit_back"}, "Credit back to that wallet"),
                                  element("option", {value: "handled"}, "Settled another way"));
  return form;
}

// Withdrawals: a shopper's waits PENDING_REVIEW, its amount held, until a finance staff member approves it (the
// payout is sent at once: PAID, or PAYING until the channel or the shopper's confirmation in WeChat answers) or rejects
// it (the amount back to their balance). Never their own: the API answers 403 OWN_REQUEST, shown in the row, as is a
// payout the channel refused (422 PAYOUT_FAILED: the withdrawal is back under review). The note is staff's; the
// shopper reads what is written for them (shopper_reason), or a fixed sentence for a refused or failed transfer.

const withdrawalStatus = (w) => w.status === "PAYING" && w.awaits_shopper
  ? "PAYING, awaiting the shopper's confirmation in WeChat" : w.status;

function withdrawalRow(w) {
  const tr = row([w.withdrawal_no, `user ${w.user_id}`, withdrawalStatus(w), yuan(w.amount_fen),
                  yuan(w.bonus_forfeited_fen), yuan(w.payout_fen), when(w.created_at), when(w.decided_at), w.note,
                  w.shopper_reason, ""],
                 {"data-withdrawal-id": w.id, "data-status": w.status});
  if (w.status === "PENDING_REVIEW" && can("decideWithdrawal")) tr.lastChild.append(withdrawalDecision(w));
  return tr;
}

function withdrawalDecision(w) {
  return actionForm({
    id: `withdrawal-${w.id}`, submit: "Approve: pay out", reject: "Reject: release",
    fields: [["note", "Note (staff only)", {maxlength: "200"}],
             ["shopper_reason", "For the shopper (why it is rejected)", {maxlength: "200"}]],
    run: async (values, approve) => {
      const decided = await call(`/admin/withdrawals/${w.id}/decision`, {
        method: "POST", json: {approve, note: values.note, shopper_reason: values.shopper_reason}});
      $("withdrawal-notice").textContent = `Withdrawal ${decided.withdrawal_no} (${yuan(decided.payout_fen)} to ` +
        `user ${decided.user_id}): ${withdrawalStatus(decided)}.`;
      reloadList("withdrawals");
    }});
}

// Ledger audit: finance (and admins) recompute every ledger account from its entries, a range at a time: each
// GET /admin/ledger-audit starts after the last account of the range before, until next_after_account_id is null. The
// accounts checked so far and each mismatch show as the ranges come in; Stop ends the walk once the range asked for
// now is in. A failed range ends it, its error shown; checking again starts from the first account.

let ledgerCheck = null;  // the walk under way: {stopped}

async function checkLedgers() {
  const walk = {stopped: false};
  ledgerCheck = walk;
  $("ledger-check").disabled = true;
  $("ledger-stop").disabled = false;
  $("ledger-error").textContent = "";
  table($("ledger-mismatches"), ["Account id", "User", "Account", "Balance", "Sum of entries"], []);
  const progress = $("ledger-progress");
  let checked = 0, found = 0, after = 0;
  const say = (state, text) => {
    progress.dataset.state = state;
    progress.textContent = `${text}: ${count(checked)} accounts checked, mismatches found: ${count(found)}.`;
  };
  say("running", "Checking");
  try {
    do {
      const range = await call("/admin/ledger-audit?" + query({after_account_id: after}));
      checked += range.accounts_checked;
      found += range.mismatches.length;
      $("ledger-mismatches").append(...range.mismatches.map(mismatchRow));
      after = range.next_after_account_id;
      say("running", "Checking");
    } while (after !== null && !walk.stopped);
    if (after === null) say("done", "Done"); else say("stopped", `Stopped after account ${after}`);
  } catch (error) {
    say("failed", "Failed");
    $("ledger-error").textContent = describe(error);
  } finally {
    if (ledgerCheck === walk) {
      ledgerCheck = null;
      $("ledger-check").disabled = false;
      $("ledger-stop").disabled = true;
    }
  }
}

function stopLedgerCheck() {
  if (ledgerCheck) ledgerCheck.stopped = true;
  $("ledger-stop").disabled = true;
}

// The ledger accounts that count points (Account in services/member/domain.py); every other one counts fen.
const POINTS_ACCOUNTS = ["points", "points_locked", "platform_points_issued"];

function mismatchRow(m) {
  const amount = (n) => POINTS_ACCOUNTS.includes(m.account) ? `${count(n)} points` : yuan(n);
  return row([String(m.account_id), m.user_id ? `user ${m.user_id}` : "platform", m.account, amount(m.balance),
              amount(m.entries_sum)], {"data-account-id": m.account_id});
}

// Coupon templates: an operator's waits (pending_approval) until an admin or finance staff member other than its
// creator approves it (the API answers 403 OWN_REQUEST to the creator, shown in the row). Its claimed coupons are
// counted as they stand now: available, held by an order awaiting payment, used and expired (together claimed).

function couponValue(t) {
  const over = t.threshold_fen ? ` over ${yuan(t.threshold_fen)}` : "";
  return t.kind === "fixed" ? `${yuan(t.amount_fen)} off${over}`
                            : `${t.percent_off}% off${over}, at most ${yuan(t.cap_fen)}`;
}

function couponRow(t) {
  const by = (id, at) => id === null ? "" : `user ${id} ${when(at)}`;
  const tr = row([String(t.id), t.name, couponValue(t), `${count(t.issued)} of ${count(t.total)}`,
                  count(t.available_count), count(t.locked_count), count(t.used_count), count(t.expired_count),
                  `${when(t.valid_from)} – ${when(t.valid_to)}`, t.status, by(t.created_by, t.created_at),
                  by(t.approved_by, t.approved_at), ""], {"data-template-id": t.id, "data-status": t.status});
  const cell = tr.lastChild, outcome = element("span", {class: "outcome", role: "alert"});
  if (t.status === "pending_approval" && can("approveTemplate")) {
    cell.append(button("Approve", (event) => attempt(event.target, outcome, async () => {
      await call(`/admin/coupon-templates/${t.id}/approve`, {method: "POST"});
      reloadList("coupons");
    })));
  }
  cell.append(outcome);
  return tr;
}

// Reviews: moderators (admin, operator, customer service) list every review, hidden ones too, by product, stars and
// whether hidden; a visible one is hidden with why (POST /admin/products/{id}/reviews/{review_id}/hide), a hidden one
// put back with why (POST /admin/reviews/{id}/unhide: 409 REVIEW_NOT_HIDDEN when someone already did, shown in its
// row). Its photos are counted, not shown.

function reviewRow(r) {
  const status = r.hidden ? `hidden: ${r.hidden_reason}` +
    (r.hidden_by ? ` (by user ${r.hidden_by} ${when(r.hidden_at)})` : "") : "visible";
  const tr = row([String(r.id), String(r.product_id), specText(r.spec), "★".repeat(r.rating), r.content,
                  count(r.images.length), r.buyer, `${r.order_no} line ${r.line_id}`, when(r.created_at), status, ""],
                 {"data-review-id": r.id, "data-hidden": r.hidden});
  if (!r.hidden && can("hideReview")) {
    tr.lastChild.append(moderationForm(r, "hide", `/admin/products/${r.product_id}/reviews/${r.id}/hide`));
  }
  if (r.hidden && can("unhideReview")) {
    tr.lastChild.append(moderationForm(r, "unhide", `/admin/reviews/${r.id}/unhide`));
  }
  return tr;
}

function moderationForm(r, action, path) {
  const hide = action === "hide";
  return actionForm({
    id: `${action}-review-${r.id}`, submit: hide ? "Hide" : "Unhide",
    fields: [["reason", hide ? "Why (spam, abuse, personal data)" : "Why it goes back",
              {required: "", maxlength: "200"}]],
    run: async (values) => {
      await call(path, {method: "POST", json: {reason: values.reason}});
      $("review-notice").textContent = `Review ${r.id} of product ${r.product_id} ` +
        (hide ? "hidden: off its page and rating." : "shown again on its page and in its rating.");
      reloadList("reviews");
    }});
}

// Products: editors (admin, operator) search every product, whatever its status, create new ones and open one: a
// draft (or rejected) one is submitted for audit, an admin approves or rejects it, an approved one goes on the shelf
// (and off), each SKU's stock is adjusted. Its limit per shopper (限购, max_per_shopper: 0 is none) is set when it is
// created and shown when it is opened.

function productRow(p) {
  return row([String(p.id), p.name, p.status, p.on_shelf ? "yes" : "no", yuan(p.price_fen), String(p.category_id),
              p.brand.name, when(p.updated_at), button("Open", () => openProduct(p.id))],
             {"data-product-id": p.id, "data-status": p.status});
}

const openProduct = (id, notice) => openDetail("product-detail", `/admin/products/${id}`,
                                               (product) => drawProduct(product, notice));

function drawProduct(p, notice = "") {
  const detail = $("product-detail");
  detail.hidden = false;
  detail.dataset.productId = p.id;
  const skus = element("table", {class: "rows", id: "product-skus"});
  table(skus, ["SKU", "Spec", "Price", "Crossed-out price", "Stock", "Sold", ""],
        [...p.skus.map((sku) => skuRow(p, sku, false)), ...p.retired_skus.map((sku) => skuRow(p, sku, true))]);
  const rejected = p.status === "REJECTED" && p.reject_reason;
  detail.replaceChildren(
    element("h2", {}, `Product ${p.id} · ${p.name} · ${p.status}` + (p.on_shelf ? " · on the shelf" : "")),
    element("p", {class: "muted"}, `${p.brand.name} · category ${p.category_id} · from ${yuan(p.price_fen)} · ` +
            `version ${p.version} · updated ${when(p.updated_at)}`),
    element("p", {id: "product-limit", class: "muted"},
            `Limit per shopper: ${p.max_per_shopper ? count(p.max_per_shopper) : "no limit"}`),
    ...(rejected ? [element("p", {class: "reason"}, `Rejected: ${p.reject_reason}`)] : []),
    element("p", {id: "product-detail-notice", class: "muted", role: "status"}, notice),
    skus, ...productActions(p));
}

// A SKU's spec ({"规格": "250g"}) as text.
const specText = (spec) => Object.entries(spec).map(([name, value]) => `${name}: ${value}`).join(", ") || "–";

// A SKU with its exact stock; a retired one (left out by an edit, still holding units) may only be written off.
function skuRow(p, sku, retired) {
  const spec = specText(sku.spec);
  const tr = row([String(sku.id), retired ? `${spec} (retired)` : spec, yuan(sku.price_fen),
                  sku.market_price_fen ? yuan(sku.market_price_fen) : "–", count(sku.stock), count(sku.sales), ""],
                 {"data-sku-id": sku.id});
  if (can("adjustStock")) tr.lastChild.append(stockForm(p, sku));
  return tr;
}

// Adjusting stock moves units: one Idempotency-Key per adjustment (the same delta and reason), kept for its retries
// until the server answers, so a retry after a lost answer moves nothing twice.
function stockForm(p, sku) {
  const form = actionForm({
    id: `stock-${sku.id}`, submit: "Adjust stock",
    fields: [["delta", "By (+ restock, − write-off)", {required: "", size: "8", pattern: "-?[1-9][0-9]{0,9}"}],
             ["reason", "Why", {maxlength: "200"}]],
    run: async (values) => {
      const body = {delta: Number(values.delta), reason: values.reason}, action = JSON.stringify(body);
      if (form.dataset.action !== action) Object.assign(form.dataset, {action, idempotencyKey: crypto.randomUUID()});
      let adjusted;
      try {
        adjusted = await call(`/admin/products/${p.id}/skus/${sku.id}/stock`, {
          method: "POST", json: body, headers: {"Idempotency-Key": form.dataset.idempotencyKey}});
      } catch (error) {
        if (refused(error)) delete form.dataset.action;
        throw error;
      }
      openProduct(p.id, `SKU ${adjusted.id}: stock now ${count(adjusted.stock)}.`);
    }});
  return form;
}

// The steps of the product's workflow its status allows and the staff member's roles may take; each answers the
// product as it is now, drawn again (and the list read again: its status may have changed).
function productActions(p) {
  const forms = [];
  const step = async (path, json) => {
    drawProduct(await call(`/admin/products/${p.id}/${path}`, {method: "POST", json}));
    reloadList("products");
  };
  if ((p.status === "DRAFT" || p.status === "REJECTED") && can("submitProduct")) {
    forms.push(actionForm({id: "submit-product-form", legend: "Ready: an admin audits it next",
                           submit: "Submit for audit", run: () => step("submit")}));
  }
  if (p.status === "PENDING_AUDIT" && can("auditProduct")) {
    forms.push(actionForm({
      id: "audit-form", legend: "Audit", submit: "Approve", reject: "Reject",
      fields: [["reason", "Reason (required to reject)", {maxlength: "500"}]],
      run: (values, approve) => step("audit", {approve, reason: values.reason, version: p.version})}));
  }
  if (p.status === "APPROVED" && can("shelfProduct")) {
    forms.push(actionForm({
      id: "shelf-form", legend: p.on_shelf ? "On the shelf: shoppers may buy it" : "Approved, not on the shelf",
      submit: p.on_shelf ? "Take off the shelf" : "Put on the shelf",
      run: () => step("shelf", {on_shelf: !p.on_shelf})}));
  }
  return forms;
}

// Creating a product or a coupon template. Its form is opened by its button and goes when closed or once the server
// created the thing. Each opening has one Idempotency-Key (crypto.randomUUID()), sent with every submit of that
// opening: a retry after a failure without an answer (network, 5xx) is the same request, so a create whose answer
// was lost is answered with what it made, never made twice; the server answers 409 IDEMPOTENCY_KEY_REUSED when the
// fields were changed after such a failure. Closing the form (or a successful create) drops the key: opening it
// again is a new create.

// Yuan as staff type them ("19.99", "20", "0.5") → integer fen, read digit by digit and never through a float (where
// 19.99 * 100 is 1998.9999999999998): {fen}, or {error} saying what is wrong.
function yuanToFen(text) {
  const typed = String(text).trim();
  if (!typed) return {error: "required"};
  if (typed.startsWith("-")) return {error: "must not be negative"};
  const decimals = /^[0-9]*\.([0-9]*)$/.exec(typed);
  if (decimals && decimals[1].length > 2) return {error: "at most 2 decimals (fen)"};
  const parts = /^([0-9]{1,10})(?:\.([0-9]{1,2}))?$/.exec(typed);
  if (!parts) return {error: "an amount in yuan, like 19.99"};
  return {fen: Number(BigInt(parts[1]) * 100n + BigInt((parts[2] || "").padEnd(2, "0")))};
}

// What a create form's fields hold, read for the body: each value, and each problem found before asking the server
// (`errors`, by field name). A read that finds a problem answers undefined.
class FormEntry {
  constructor(form) {
    this.form = form;
    this.errors = {};
  }

  refuse(name, message) {
    this.errors[name] ??= message;
    return undefined;
  }

  text(name, {required = false} = {}) {
    const value = this.form.elements[name].value.trim();
    return required && !value ? this.refuse(name, "required") : value;
  }

  // Yuan typed → fen; blank is `blank` when given, else refused.
  money(name, {min = 0, max, blank} = {}) {
    const typed = this.text(name);
    if (!typed && blank !== undefined) return blank;
    const {fen, error} = yuanToFen(typed);
    if (error) return this.refuse(name, error);
    return fen < min || fen > max ? this.refuse(name, `${yuan(min)} to ${yuan(max)}`) : fen;
  }

  // A whole number typed; blank is `blank` when given, else refused.
  whole(name, {min = 0, max, blank} = {}) {
    const typed = this.text(name);
    if (!typed && blank !== undefined) return blank;
    if (!/^[0-9]{1,10}$/.test(typed)) return this.refuse(name, typed ? "a whole number" : "required");
    const value = Number(typed);
    return value < min || value > max ? this.refuse(name, `${count(min)} to ${count(max)}`) : value;
  }

  // An id chosen in a select ("" until one is).
  choice(name) {
    const value = this.form.elements[name].value;
    return value ? Number(value) : this.refuse(name, "choose one");
  }
}

// The button opening a create form: the lists the form chooses from are read, then the form is drawn in `slot` (a
// failure shown in the notice); a form already open stays as it is, with its key.
async function openCreateForm(opener, slot, noticeId, build) {
  if ($(slot).firstChild) return;
  opener.disabled = true;
  const notice = $(noticeId);
  notice.className = "muted";
  notice.textContent = "";
  try {
    $(slot).replaceChildren(await build());
  } catch (error) {
    notice.className = "error";
    notice.textContent = describe(error);
  } finally {
    opener.disabled = false;
  }
}

// A create form: `fields` ({name, label, api, tag, attributes, options, kind}), each drawn with its error beside it
// (`api`: the body's name for it, matched against the error's details, when not `name`); `read(entry)` builds the
// body from a FormEntry, `create(body, key)` sends it with the form's Idempotency-Key, `created(reply)` says what was
// made once the form is gone.
function createForm({id, legend, fields, submit, read, create, created}) {
  const form = element("form", {id, class: "create panel", novalidate: ""});
  form.dataset.idempotencyKey = crypto.randomUUID();
  form.append(element("h3", {}, legend));
  for (const {name, label, api, tag, attributes = {}, options = [], kind} of fields) {
    const input = element(tag || "input", Object.assign({name, id: `${id}-${name}`}, attributes));
    for (const [value, text] of options) input.append(element("option", {value}, text));
    const field = element("div", {class: "field", "data-field": name, "data-api": api || name});
    if (kind) field.dataset.kind = kind;
    field.append(element("label", {for: input.id}, label), input,
                 element("span", {class: "field-error", role: "alert"}));
    form.append(field);
  }
  const send = element("button", {type: "submit"}, submit);
  const close = button("Close", () => form.remove(), {class: "secondary"});
  const outcome = element("p", {class: "outcome", role: "alert"});
  const buttons = element("div", {class: "buttons"});
  buttons.append(send, close);
  form.append(buttons, outcome);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    showFieldErrors(form, {});
    const entry = new FormEntry(form);
    const body = read(entry);
    if (Object.keys(entry.errors).length) {
      showFieldErrors(form, entry.errors);
      outcome.className = "outcome error";
      outcome.textContent = "Check the fields marked.";
      return;
    }
    attempt(send, outcome, async () => {
      let reply;
      try {
        reply = await create(body, form.dataset.idempotencyKey);
      } catch (error) {
        throw fieldErrorsShown(form, error);
      }
      form.remove();
      created(reply);
    });
  });
  return form;
}

// Each message beside its field (by field name); the fields not named lose theirs.
function showFieldErrors(form, errors) {
  for (const field of form.querySelectorAll(".field")) {
    const message = errors[field.dataset.field] || "";
    field.querySelector(".field-error").textContent = message;
    field.querySelector("input, select, textarea").toggleAttribute("aria-invalid", Boolean(message));
    field.classList.toggle("invalid", Boolean(message));
  }
}

// An API error's details naming a field of the form (its body name, or below it: skus.0.price_fen, category_ids.2)
// shown beside that field; the error is left with the details no field took, for the line under the form.
function fieldErrorsShown(form, error) {
  if (!(error instanceof ApiError)) return error;
  const fields = [...form.querySelectorAll(".field:not([hidden])")];
  const errors = {}, rest = {};
  for (const [name, message] of Object.entries(error.details || {})) {
    const field = fields.find((f) => name === f.dataset.api || name.startsWith(f.dataset.api + "."));
    let text = typeof message === "string" ? message : JSON.stringify(message);
    if (field && /_fen$/.test(name) && /[1-9]/.test(text)) text += " (fen)";  // an amount; the field is in yuan
    if (field) errors[field.dataset.field] ??= text; else rest[name] = message;
  }
  showFieldErrors(form, errors);
  error.details = Object.keys(rest).length ? rest : null;
  if (error.code === "IDEMPOTENCY_KEY_REUSED") {
    error.message += ": an earlier try of this form, with other values, may have created it. Look in the list; " +
      "close the form and open it again to create another";
  }
  return error;
}

// The category tree (GET /categories) as [id, "Parent › Child"] for a select, every depth.
function categoryOptions(tree, path = []) {
  return tree.flatMap((c) => [[String(c.id), [...path, c.name].join(" › ")],
                              ...categoryOptions(c.children, [...path, c.name])]);
}

// A simple product: one SKU without specs (specs and more SKUs: the API, PUT /admin/products/{id}). It is created
// as a DRAFT, shown opened: submitted for audit, approved and put on the shelf from there.
async function productForm() {
  const [categories, brands] = await Promise.all([call("/categories"), call("/brands")]);
  const yuanInput = {inputmode: "decimal", size: "10", autocomplete: "off"};
  return createForm({
    id: "product-form", legend: "New product (a draft, one SKU)", submit: "Create product",
    fields: [
      {name: "name", label: "Name", attributes: {required: "", maxlength: "100", size: "40"}},
      {name: "subtitle", label: "Subtitle", attributes: {maxlength: "200", size: "40"}},
      {name: "category_id", label: "Category", tag: "select", attributes: {required: ""},
       options: [["", "Choose…"], ...categoryOptions(categories.items)]},
      {name: "brand_id", label: "Brand", tag: "select", attributes: {required: ""},
       options: [["", "Choose…"], ...brands.items.map((b) => [String(b.id), b.name])]},
      {name: "price", label: "Price (¥)", api: "skus.0.price_fen",
       attributes: Object.assign({required: "", placeholder: "19.99"}, yuanInput)},
      {name: "market_price", label: "Crossed-out price (¥, optional)", api: "skus.0.market_price_fen",
       attributes: yuanInput},
      {name: "stock", label: "Stock", api: "skus.0.stock", attributes: {inputmode: "numeric", size: "8", value: "0"}},
      {name: "weight_g", label: "Weight (g)", api: "skus.0.weight_g",
       attributes: {inputmode: "numeric", size: "8", value: "0"}},
      {name: "max_per_shopper", label: "Limit per shopper (0: no limit)",
       attributes: {inputmode: "numeric", size: "4", value: "0"}},
      {name: "description", label: "Description", tag: "textarea", attributes: {maxlength: "20000", rows: "3"}},
    ],
    read: (entry) => {
      const price = entry.money("price", {min: 1, max: SKU_PRICE_MAX_FEN});
      const market = entry.money("market_price", {max: SKU_PRICE_MAX_FEN, blank: 0});
      if (market && price !== undefined && market < price) entry.refuse("market_price", "none, or at least the price");
      return {
        name: entry.text("name", {required: true}), subtitle: entry.text("subtitle"),
        category_id: entry.choice("category_id"), brand_id: entry.choice("brand_id"),
        description: entry.text("description"),
        skus: [{spec: {}, price_fen: price, market_price_fen: market,
                stock: entry.whole("stock", {max: 1e9, blank: 0}),
                weight_g: entry.whole("weight_g", {max: 1e6, blank: 0})}],
        max_per_shopper: entry.whole("max_per_shopper", {max: 999, blank: 0}),
      };
    },
    create: (body, key) => call("/admin/products", {method: "POST", json: body, headers: {"Idempotency-Key": key}}),
    created: (product) => {
      $("product-notice").className = "muted";
      $("product-notice").textContent = `Created product ${product.id} “${product.name}” at ` +
        `${yuan(product.price_fen)}: a ${product.status}, submit it for audit when it is ready.`;
      drawProduct(product);
      reloadList("products");
    },
  });
}

// Coupon times are typed in Beijing time, like every day the console shows.
const beijing = (local) => local && `${local.length === 16 ? local + ":00" : local}+08:00`;

async function couponForm() {
  const categories = await call("/categories");
  const money = {inputmode: "decimal", size: "10", autocomplete: "off"};
  const form = createForm({
    id: "coupon-form", legend: "New coupon template", submit: "Create template",
    fields: [
      {name: "name", label: "Name", attributes: {required: "", maxlength: "64", size: "30"}},
      {name: "kind", label: "Kind", tag: "select", options: [["fixed", "Amount off"], ["percent", "Percent off"]]},
      {name: "amount", label: "Amount off (¥)", api: "amount_fen", kind: "fixed", attributes: money},
      {name: "percent_off", label: "Percent off (1-99)", kind: "percent",
       attributes: {inputmode: "numeric", size: "4"}},
      {name: "cap", label: "At most off (¥)", api: "cap_fen", kind: "percent", attributes: money},
      {name: "threshold", label: "On orders of at least (¥, optional)", api: "threshold_fen", attributes: money},
      {name: "total", label: "Coupons in all", attributes: {inputmode: "numeric", size: "8"}},
      {name: "per_user_limit", label: "Per shopper", attributes: {inputmode: "numeric", size: "4", value: "1"}},
      {name: "valid_from", label: "Valid from (Beijing time)", attributes: {type: "datetime-local"}},
      {name: "valid_to", label: "Valid to (Beijing time)", attributes: {type: "datetime-local"}},
      {name: "category_ids", label: "Only in categories (none chosen: every category)", tag: "select",
       attributes: {multiple: "", size: "6"}, options: categoryOptions(categories.items)},
    ],
    read: (entry) => {
      const kind = entry.form.elements.kind.value;
      const from = entry.text("valid_from", {required: true}), to = entry.text("valid_to", {required: true});
      if (from && to && to <= from) entry.refuse("valid_to", "must be after valid from");
      const body = {
        name: entry.text("name", {required: true}), kind,
        threshold_fen: entry.money("threshold", {max: 1e12, blank: 0}),
        total: entry.whole("total", {min: 1, max: 10_000_000}),
        per_user_limit: entry.whole("per_user_limit", {min: 1, max: 1000}),
        valid_from: beijing(from), valid_to: beijing(to),
      };
      if (kind === "fixed") {
        body.amount_fen = entry.money("amount", {min: 1, max: 1e12});
      } else {
        body.percent_off = entry.whole("percent_off", {min: 1, max: 99});
        body.cap_fen = entry.money("cap", {min: 1, max: 1e12});
      }
      const chosen = [...entry.form.elements.category_ids.selectedOptions].map((option) => Number(option.value));
      if (chosen.length) body.category_ids = chosen;
      return body;
    },
    create: (body, key) => call("/admin/coupons", {method: "POST", json: body, headers: {"Idempotency-Key": key}}),
    created: (template) => {
      $("coupon-notice").className = "muted";
      $("coupon-notice").textContent = `Created coupon template ${template.id} “${template.name}”: ` +
        template.status + (template.status === "pending_approval"
          ? " (an admin or finance staff member other than you approves it)." : ".");
      reloadList("coupons");
    },
  });
  const kind = form.elements.kind;
  const showKind = () => {
    for (const field of form.querySelectorAll(".field[data-kind]")) field.hidden = field.dataset.kind !== kind.value;
  };
  kind.addEventListener("change", showKind);
  showKind();
  return form;
}

// Users: staff who serve shoppers find an account; an admin sets its staff roles and a staff member's password.

function userRow(user) {
  return row([String(user.id), user.nickname, user.phone, user.roles.join(", ") || "shopper", when(user.created_at),
              button("Open", () => openUser(user.id))], {"data-user-id": user.id});
}

// The user as the search answers them now (by id: no phone in the URL), drawn in the detail panel.
const openUser = (id) => openDetail("user-detail", "/admin/users?" + query({id}), (found) => drawUser(found.items[0]));

function drawUser(user, notice = "") {
  const detail = $("user-detail");
  if (!user) {
    detail.replaceChildren(element("p", {class: "error", role: "alert"}, "No such user."));
    return;
  }
  // Redrawn after an action (the same user): the member panel already read is kept, not read (and audited) again.
  const member = detail.dataset.userId === String(user.id) ? $("member-panel") : null;
  detail.dataset.userId = user.id;
  detail.replaceChildren(
    element("h2", {}, `User ${user.id} · ${user.nickname}`),
    element("p", {}, `${user.phone} · ${user.roles.join(", ") || "shopper"} · registered ${when(user.created_at)}`),
    element("p", {id: "user-notice", class: "muted", role: "status"}, notice), ...userActions(user));
  if (can("memberRecord")) detail.append(member || memberPanel(user.id));
}

// The user's member record as GET /member shows it to them (level, points, the points refunds could not take back,
// wallet, coupons) and their points entries a page at a time: what customer service needs for "where are my points?".
// Each read is audited by the member service; the record holds no phone or name.
function memberPanel(userId) {
  const panel = element("section", {id: "member-panel"});
  loadMember(panel, userId, 1);
  return panel;
}

async function loadMember(panel, userId, page) {
  const title = element("h3", {}, "Member");
  panel.replaceChildren(title, element("p", {class: "muted"}, "Loading…"));
  let member;
  try {
    member = await call(`/admin/members/${userId}?` + query({page, page_size: 10}));
  } catch (error) {
    const absent = error instanceof ApiError && error.code === "MEMBER_NOT_FOUND";
    panel.replaceChildren(title, absent ? element("p", {class: "muted"}, "Not a member.")
                                        : element("p", {class: "error", role: "alert"}, describe(error)));
    return;
  }
  const summary = element("table", {class: "rows amounts", id: "member-summary"});
  table(summary, ["Member no", "Level", "Points", "Points owed", "Balance", "Held by withdrawals", "Bonus",
                  "Coupons", "Total spend", "Plan", "Joined"], [row([
    member.member_no, member.level, count(member.points), count(member.points_owed), yuan(member.balance_fen),
    yuan(member.pending_fen), yuan(member.bonus_fen), count(member.coupons_available), yuan(member.total_spend_fen),
    member.plan ? `${member.plan.name} until ${when(member.plan.expires_at)}` : "–", when(member.joined_at)])]);
  const entries = member.points_entries;
  const list = element("table", {class: "rows", id: "member-points"});
  table(list, ["When", "Account", "Points", "After", "Kind", "Reference"], entries.items.map((entry) => row([
    when(entry.created_at), entry.account, count(entry.amount), count(entry.balance_after), entry.kind,
    entry.reference])));
  const last = Math.max(1, Math.ceil(entries.total / entries.page_size));
  const previous = button("Previous", () => loadMember(panel, userId, entries.page - 1), {"data-step": "-1"});
  const next = button("Next", () => loadMember(panel, userId, entries.page + 1), {"data-step": "1"});
  previous.disabled = entries.page <= 1;
  next.disabled = entries.page >= last;
  const pages = element("div", {class: "pager"});
  pages.append(previous, element("span", {}, `page ${entries.page} of ${last}`), next);
  panel.replaceChildren(title, summary, element("h3", {}, `Points entries (${count(entries.total)})`),
                        entries.total ? list : element("p", {class: "muted"}, "No points entries."), pages);
}

function userActions(user) {
  const forms = [];
  if (can("setRoles")) {
    forms.push(actionForm({
      id: "roles-form", legend: "Staff roles (none: a shopper). A shopper's first role clears their password and " +
        "ends their sessions.", submit: "Set roles",
      fields: STAFF_ROLES.map((role) => [`role-${role}`, role, Object.assign(
        {type: "checkbox", value: role}, user.roles.includes(role) ? {checked: ""} : {})]),
      run: async (values) => {
        const reply = await call(`/admin/users/${user.id}/roles`, {
          method: "PUT", json: {roles: STAFF_ROLES.filter((role) => values[`role-${role}`])}});
        const notice = reply.password_cleared ? `Roles set. Their password was cleared and ` +
          `${count(reply.sessions_ended)} sessions ended: set a password for them below.` : "Roles set.";
        drawUser(Object.assign({}, user, {roles: reply.roles}), notice);  // the answer has no registration time
      }}));
  }
  if (can("staffPassword") && user.roles.length) {
    forms.push(actionForm({
      id: "staff-password-form", legend: "Set their password (they cannot by SMS); every session of theirs ends",
      submit: "Set password",
      fields: [["new_password", "New password", {type: "password", required: "", minlength: "8", maxlength: "128",
                                                  autocomplete: "new-password"}]],
      run: async (values) => {
        const form = $("staff-password-form");
        const reply = await call(`/admin/users/${user.id}/password`, {
          method: "POST", json: {new_password: form.elements.new_password.value}});
        form.reset();
        form.querySelector(".outcome").textContent = `Password set: ${count(reply.sessions_ended)} sessions ended.`;
      }}));
  }
  return forms;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("send-reset-code").addEventListener("click", sendResetCode);
  $("login-form").querySelector("button[type=submit]").disabled = false;  // the form is this script's now
  $("logout").addEventListener("click", logout);
  $("period").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  for (const button of document.querySelectorAll("[data-days]")) {
    button.addEventListener("click", () => { setPeriod(Number(button.dataset.days)); load(); });
  }
  $("export-form").addEventListener("submit", exportReport);
  for (const button of document.querySelectorAll("[data-section]")) {
    button.addEventListener("click", () => showSection(button.dataset.section));
  }
  for (const [name, list] of Object.entries(LISTS)) {
    $(list.form).addEventListener("submit", (event) => { event.preventDefault(); loadList(name, 1); });
    $(name).after(pager(name));
  }
  $("close-refund").addEventListener("submit", closeRefundByNumber);
  $("ledger-check").addEventListener("click", checkLedgers);
  $("ledger-stop").addEventListener("click", stopLedgerCheck);
  $("new-product").addEventListener("click", (event) => openCreateForm(event.target, "product-create",
                                                                                "product-notice", productForm));
  $("new-coupon").addEventListener("click", (event) => openCreateForm(event.target, "coupon-create",
                                                                              "coupon-notice", couponForm));
  setPeriod(30);
  if (session.access) showConsole(); else showLogin("");
});
