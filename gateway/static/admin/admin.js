// MiniMall admin dashboard: staff log in, pick a period, and see the admin analytics API drawn as SVG.
// No framework, no build step, nothing fetched from another origin.
"use strict";

const API = "/api/v1";
// Who reads the reports: REPORT_READERS in services/common/auth.py (a test keeps the two equal).
const STAFF_ROLES = ["admin", "operator", "finance"];
const SVG = "http://www.w3.org/2000/svg";
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
const yuan = (fen) => "¥" + (fen / 100).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
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
  },
  clear() { sessionStorage.clear(); },
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
  }
}

async function call(path, options = {}, retried = false) {
  const headers = Object.assign({}, options.headers || {});
  if (session.access) headers.Authorization = "Bearer " + session.access;
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method: options.method || "GET", headers,
    body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
  });
  if (response.status === 401 && !retried && session.refresh && await refreshSession()) {
    return call(path, options, true);
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === 401) showLogin("Your session ended; log in again.");
    throw new ApiError(response.status, body);
  }
  return options.raw ? response : response.json();
}

async function refreshSession() {
  const response = await fetch(API + "/auth/refresh", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({refresh_token: session.refresh}),
  });
  if (!response.ok) return false;
  session.save(await response.json());
  return true;
}

// Login and logout

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const reply = await fetch(API + "/auth/login/password", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({phone: $("phone").value.trim(), password: $("password").value}),
    });
    const body = await reply.json();
    if (!reply.ok) throw new ApiError(reply.status, body);
    if (!body.user.roles.some((role) => STAFF_ROLES.includes(role))) {
      throw new Error("This account is not staff: the dashboard is for admins, operators and finance.");
    }
    session.save(body);
    $("password").value = "";
    showDashboard();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

async function logout() {
  const refresh = session.refresh;
  session.clear();
  if (refresh) {
    fetch(API + "/auth/logout", {method: "POST", headers: {"Content-Type": "application/json"},
                                 body: JSON.stringify({refresh_token: refresh})}).catch(() => {});
  }
  showLogin("");
}

function showLogin(message) {
  $("dashboard-view").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
}

function showDashboard() {
  $("login-view").hidden = true;
  $("dashboard-view").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = sessionStorage.getItem("user") || "";
  load();
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
    drawPreferences(preferences);
    drawRetention(retention);
    $("status").textContent = `${overview.from} – ${overview.to}`;
    document.body.dataset.loaded = query;
  } catch (error) {
    $("status").textContent = "";
    $("load-error").textContent = error.message;
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

function drawPreferences(preferences) {
  const sales = (rows, label) => rows.map((s) => ({label: label(s), value: s.sales_fen,
                                                   text: `${yuan(s.sales_fen)} · ${count(s.paid_orders)} orders`}));
  barChart($("by-category"), sales(preferences.by_category, (s) => `Category ${s.category_id}`), yuan);
  barChart($("by-brand"), sales(preferences.by_brand, (s) => s.brand_id ? `Brand ${s.brand_id}` : "No brand"), yuan);
  barChart($("by-price-band"), sales(preferences.by_price_band, (s) =>
    s.max_fen === null ? `${yuan(s.min_fen)}+` : `${yuan(s.min_fen)}–${yuan(s.max_fen)}`), yuan);
  barChart($("top-products"), sales(preferences.top_products, (s) => `Product ${s.product_id}`), yuan);
}

function drawRetention(retention) {
  const table = element("table", {class: "retention"});
  const head = element("tr", {});
  for (const title of ["Registered", "New users", "Day 1", "Day 7", "Day 30"]) head.append(element("th", {}, title));
  table.append(head);
  for (const cohort of retention.cohorts.filter((c) => c.new_users > 0)) {
    const row = element("tr", {});
    row.append(element("td", {}, cohort.date), element("td", {}, count(cohort.new_users)));
    for (const n of ["d1", "d7", "d30"]) {
      const rate = cohort[`${n}_rate`];
      const cell = element("td", {class: "rate", title: `${cohort[n]} of ${cohort.new_users}`}, percent(rate));
      if (rate !== null) cell.style.backgroundColor = `hsl(217, 91%, ${Math.round(95 - rate * 45)}%)`;
      row.append(cell);
    }
    table.append(row);
  }
  if (table.rows.length === 1) {
    $("retention").replaceChildren(element("p", {class: "muted"}, "No one registered in this period."));
  } else {
    $("retention").replaceChildren(table);
  }
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
    chart.append(svg("text", {x: labelWidth - 6, y: top + bar / 2 + 4, class: "label", "text-anchor": "end"}, row.label));
    const rect = svg("rect", {x: labelWidth, y: top, width: length, height: bar, rx: 3,
                              fill: COLORS[0], "data-value": row.value});
    rect.append(svg("title", {}, `${row.label}: ${row.text || format(row.value)}`));
    chart.append(rect, svg("text", {x: labelWidth + length + 6, y: top + bar / 2 + 4, class: "bar-text"},
                           row.text || format(row.value)));
  });
  container.replaceChildren(chart);
}

// Exports: a job on the server; the file is fetched with the token and handed to the browser.

async function exportReport(event) {
  event.preventDefault();
  const kind = $("export-kind").value, format = $("export-format").value;
  const item = element("li", {}, `${kind} ${$("from").value}–${$("to").value} (${format}): queued`);
  $("exports").prepend(item);
  try {
    let job = await call("/admin/reports", {method: "POST",
                                            json: {kind, format, from: $("from").value, to: $("to").value}});
    while (job.status === "queued" || job.status === "running") {
      item.textContent = `${kind} ${job.from}–${job.to} (${format}): ${job.status} ${job.percent}%`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      job = await call(`/admin/reports/${job.id}`);
    }
    if (job.status === "failed") throw new Error(job.error || "the export failed");
    const response = await call(`/admin/reports/${job.id}/file`, {raw: true});
    const link = element("a", {href: URL.createObjectURL(await response.blob()),
                               download: `${job.kind}-${job.from}-${job.to}.${job.format}`},
                         `${kind} ${job.from}–${job.to} (${format}): ${count(job.rows)} rows, download`);
    item.replaceChildren(link);
    link.click();
  } catch (error) {
    item.textContent = `${kind} (${format}): ${error.message}`;
    item.className = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("period").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  for (const button of document.querySelectorAll("[data-days]")) {
    button.addEventListener("click", () => { setPeriod(Number(button.dataset.days)); load(); });
  }
  $("export-form").addEventListener("submit", exportReport);
  setPeriod(30);
  if (session.access) showDashboard(); else showLogin("");
});
