// The shop manager's page: one WebSocket to /ws (token as a subprotocol, never in the URL)
// for live alerts, the admin APIs for orders, users and who is online. Plain JS, no
// framework, no inline script (the CSP allows scripts from 'self' only). Everything from
// the server goes in through textContent: nothing it sends is interpreted as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

const STAFF_STATUSES = ["PROCESSING", "SHIPPED", "DELIVERED"];
const NEXT_STATUS = { CONFIRMED: "PROCESSING", PROCESSING: "SHIPPED", SHIPPED: "DELIVERED" };
const CANCELLABLE = new Set(["PENDING", "RESERVED", "PAID", "SHIPMENT_CREATED", "CONFIRMED", "PROCESSING"]);
const ALERT_KINDS = {
  "order.created": "New order",
  "saga.failed": "Checkout failed",
  "circuit.opened": "Provider circuit opened",
};
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const ORDERS_SHOWN = 30;
const ALERTS_SHOWN = 100;

const state = {
  token: null,
  claims: null,
  socket: null,
  attempt: 0,
  retryTimer: null,
  pollTimer: null,
  ordersTimer: null,
  expiryTimer: null,
  generation: 0, // bumped on every new login: callbacks of an older socket do nothing
  users: new Map(), // user id -> Promise of a label (masked phone or name)
  openOrderId: null,
  openOrder: null,
};

// --- formatting ---------------------------------------------------------------------

function currencyDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
      .maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** Integer minor units of `currency` as money ("849", "EUR" → "€8.49"); never the raw number. */
function money(minor, currency) {
  if (minor === null || minor === undefined || minor === "" || !currency) return "—";
  const digits = currencyDigits(currency);
  const amount = Number(minor) / 10 ** digits;
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(amount);
  } catch {
    return `${amount.toFixed(digits)} ${currency}`;
  }
}

/** "+4915112345123" → "+49•••••123": enough to recognise, not enough to call. */
function maskPhone(phone) {
  if (!phone) return "";
  const text = String(phone);
  if (text.length <= 6) return "•".repeat(text.length);
  return `${text.slice(0, 3)}•••••${text.slice(-3)}`;
}

function when(value) {
  const date = value ? new Date(value) : new Date();
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** The tail of an id: time-ordered UUIDs (v7) share their head with their neighbours. */
function shortId(id) {
  const text = String(id || "");
  return text.length > 13 ? `…${text.slice(-8)}` : text;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function timeEl(value) {
  const date = value ? new Date(value) : new Date();
  return el("time", { datetime: Number.isNaN(date.getTime()) ? undefined : date.toISOString() }, when(value));
}

// --- messages and status -----------------------------------------------------------

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "error" ? "message" : "message info";
  box.hidden = !text;
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = `status status-${kind}`;
}

// --- the token ----------------------------------------------------------------------

/** The token's claims, read only to explain problems early: the server decides. */
function readClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const json = decodeURIComponent(
      Array.from(atob(padded), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

const roles = () => (state.claims && Array.isArray(state.claims.roles) ? state.claims.roles : []);
const isAdmin = () => roles().includes("admin");
const isStaff = () => isAdmin() || roles().includes("moderator");

// --- the admin APIs -----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function problemMessage(status, body) {
  const detail = body && typeof body === "object" ? body.detail || body.title : null;
  if (status === 401) {
    return "The server refused your token (expired or not valid). Log in again and paste a fresh access token.";
  }
  if (status === 403) {
    return "Not allowed: your role may not do this. Only an admin can change orders; a moderator can only look.";
  }
  if (status === 404) return "Not found: it may have been removed.";
  if (status === 409) return `Not possible now: ${detail || "the order is not in a state that allows it"}.`;
  if (status >= 500) return `The server could not answer (${status}). Try again in a moment.`;
  return `Request failed (${status})${detail ? `: ${detail}` : ""}.`;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server could not be reached. Check the connection and try again.");
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new ApiError(response.status, problemMessage(response.status, parsed));
  return { status: response.status, body: parsed };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** "Ada (+49•••••123)", "+49•••••123", or a short id when the user is not in auth. */
function userLabel(userId) {
  const id = String(userId || "");
  if (!id) return Promise.resolve("unknown customer");
  if (!state.users.has(id)) {
    const fallback = `user ${shortId(id)}`;
    const lookup = UUID.test(id)
      ? api(`/api/v1/admin/users/${encodeURIComponent(id)}`).then(
          ({ body }) => {
            const phone = maskPhone(body.phone);
            return body.display_name ? `${body.display_name} (${phone})` : phone || fallback;
          },
          (error) => {
            if (error.status !== 404) state.users.delete(id); // try again later
            return fallback;
          },
        )
      : Promise.resolve(fallback);
    state.users.set(id, lookup);
  }
  return state.users.get(id);
}

function userEl(userId) {
  const span = el("span", { className: "user", "data-user-id": userId || "" }, "…");
  userLabel(userId).then((label) => {
    span.textContent = label;
  });
  return span;
}

// --- online users -------------------------------------------------------------------

async function refreshOnline() {
  const generation = state.generation;
  let body;
  try {
    ({ body } = await api("/api/v1/admin/presence"));
  } catch (error) {
    // a refused token is reported once, by the socket's close (same verifier)
    return;
  }
  if (generation !== state.generation) return;
  const users = body.user_ids || [];
  $("online-count").textContent = String(users.length);
  $("online").replaceChildren(...users.map((id) => el("li", {}, userEl(id))));
}

// --- orders list --------------------------------------------------------------------

function orderLink(orderId) {
  const link = el("a", { href: `#order/${orderId}`, className: "order-link", "data-order-id": orderId }, `order ${shortId(orderId)}`);
  return link;
}

function orderRow(order) {
  return el(
    "li",
    { "data-order-id": order.id, className: "order" },
    el(
      "div",
      { className: "line" },
      orderLink(order.id),
      el("span", { className: "total" }, money(order.total, order.currency)),
      el("span", { className: "badge order-status" }, order.status || ""),
      userEl(order.user_id),
      timeEl(order.created_at),
    ),
  );
}

function upsertOrder(order) {
  if (!order || !order.id) return;
  const list = $("orders");
  const existing = list.querySelector(`li[data-order-id="${CSS.escape(String(order.id))}"]`);
  const row = orderRow(order);
  if (existing) existing.replaceWith(row);
  else list.prepend(row);
  while (list.children.length > ORDERS_SHOWN) list.lastChild.remove();
}

async function loadOrders() {
  const generation = state.generation;
  try {
    const { body } = await api(`/api/v1/admin/orders?size=${ORDERS_SHOWN}`);
    if (generation !== state.generation) return;
    $("orders").replaceChildren(...(body.items || []).map(orderRow));
  } catch (error) {
    // a refused token is reported once, by the socket's close (same verifier)
    if (generation === state.generation && error.status !== 401) {
      showMessage(`Orders could not be loaded. ${error.message}`);
    }
  }
}

// --- alerts -------------------------------------------------------------------------

function fieldValue(key, value, data) {
  if (value === null || value === undefined) return "—";
  if (["total", "subtotal", "amount"].includes(key) && typeof value === "number") {
    return money(value, data.currency);
  }
  if (key === "lines" && Array.isArray(value)) {
    return value
      .map((line) => `${line.qty} × ${line.name || line.sku} @ ${money(line.unit_price, line.currency || data.currency)}`)
      .join("; ");
  }
  if (typeof value === "object") return JSON.stringify(value, null, 2);
  return String(value);
}

function alertDetails(data) {
  const list = el("dl");
  for (const [key, value] of Object.entries(data)) {
    const text = fieldValue(key, value, data);
    list.append(el("dt", {}, key), el("dd", {}, text.includes("\n") ? el("pre", {}, text) : text));
  }
  return el("details", {}, el("summary", {}, "Details"), list);
}

function addAlert(message) {
  const type = String(message.type || "alert");
  const data = message.data && typeof message.data === "object" ? message.data : {};
  const line = el("div", { className: "line" }, el("span", { className: "kind" }, ALERT_KINDS[type] || type));
  if (data.order_id) line.append(orderLink(data.order_id));
  if (type === "order.created" || data.total !== undefined) {
    line.append(el("span", { className: "total" }, money(data.total, data.currency)));
  }
  if (data.reason) line.append(el("span", { className: "reason" }, `reason: ${data.reason}`));
  if (data.breaker) line.append(el("span", { className: "breaker" }, `provider: ${data.breaker}`));
  if (data.user_id) line.append(userEl(data.user_id));
  line.append(timeEl(message.occurred_at));
  const item = el(
    "li",
    { className: `alert alert-${type.replace(/[^a-z0-9]+/gi, "-")}`, "data-type": type },
    line,
    alertDetails(data),
  );
  const list = $("alerts");
  list.prepend(item); // newest first
  while (list.children.length > ALERTS_SHOWN) list.lastChild.remove();
}

// --- order detail -------------------------------------------------------------------

function facts(target, pairs) {
  target.replaceChildren();
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    target.append(el("dt", {}, label), el("dd", {}, value));
  }
  if (!target.children.length) target.append(el("dt", {}, "—"), el("dd", {}, "none yet"));
}

function stepResult(steps, name) {
  const step = steps.find((s) => s.step === name && s.result);
  return step ? step.result : null;
}

function stepOutcome(steps, name) {
  const step = steps.find((s) => s.step === name);
  return step ? `${step.status}${step.last_error ? ` (${step.last_error})` : ""}` : null;
}

function renderOrder(order) {
  state.openOrder = order;
  const steps = order.steps || [];
  $("detail-title").textContent = `Order ${order.id}`;
  const summary = $("detail-summary");
  summary.replaceChildren(
    el("span", { className: "badge", id: "detail-status" }, order.status),
    " ",
    money(order.total, order.currency),
    " · ",
    userEl(order.user_id),
    " · ",
    timeEl(order.created_at),
    order.reason ? ` · reason: ${order.reason}${order.reason_detail ? ` (${order.reason_detail})` : ""}` : "",
    order.cancel_requested && order.status !== "CANCELLED" ? " · cancel requested" : "",
  );

  const lines = order.lines && order.lines.length
    ? order.lines
    : (order.items || []).map((item) => ({ sku: item.sku, qty: item.qty, name: item.sku }));
  $("detail-lines").tBodies[0].replaceChildren(
    ...lines.map((line) =>
      el(
        "tr",
        {},
        el("td", {}, line.name || line.sku),
        el("td", { className: "wide-only" }, line.sku),
        el("td", { className: "num" }, String(line.qty)),
        el("td", { className: "num" }, money(line.unit_price, line.currency || order.currency)),
        el(
          "td",
          { className: "num" },
          line.unit_price === undefined ? "—" : money(line.unit_price * line.qty, line.currency || order.currency),
        ),
      ),
    ),
  );
  const foot = $("detail-lines").tFoot;
  foot.replaceChildren(
    el("tr", {}, el("td", { colspan: "4" }, "Subtotal"), el("td", { className: "num" }, money(order.subtotal, order.currency))),
    el("tr", {}, el("td", { colspan: "4" }, "Total"), el("td", { className: "num", id: "detail-total" }, money(order.total, order.currency))),
  );

  $("detail-steps").tBodies[0].replaceChildren(
    ...steps.map((step) =>
      el(
        "tr",
        { "data-step": step.step },
        el("td", {}, step.step.replace(/_/g, " ")),
        el("td", { className: "wide-only" }, step.kind),
        el("td", { className: `outcome-${step.status}` }, step.status),
        el("td", { className: "num" }, String(step.attempts)),
        el("td", { className: "error" }, step.last_error || ""),
        el("td", { className: "wide-only" }, timeEl(step.updated_at)),
      ),
    ),
  );

  facts($("detail-payment"), [
    ["Payment id", order.payment_id],
    ["Amount", order.total === null ? null : money(order.total, order.currency)],
    ["Authorized", stepOutcome(steps, "authorize_payment")],
    ["Captured", stepOutcome(steps, "capture_payment")],
    ["Refunded", stepOutcome(steps, "refund_payment")],
  ]);
  const shipment = stepResult(steps, "create_shipment") || {};
  const address = order.shipping_address || {};
  facts($("detail-shipment"), [
    ["Shipment id", order.shipment_id],
    ["Created", stepOutcome(steps, "create_shipment")],
    ["Cancelled", stepOutcome(steps, "cancel_shipment")],
    ["Tracking", order.tracking_number || shipment.tracking_number],
    ["Label", order.label_url || shipment.label_url],
    ["Ship to", [address.name, address.line1, address.postal_code, address.city, address.country].filter(Boolean).join(", ")],
  ]);
  renderActions(order);
  $("order-detail").hidden = false;
}

function renderActions(order) {
  const admin = isAdmin();
  const next = NEXT_STATUS[order.status];
  for (const status of STAFF_STATUSES) {
    const button = $(`act-${status.toLowerCase()}`);
    button.disabled = !admin || status !== next;
  }
  $("act-cancel").disabled = !admin || !CANCELLABLE.has(order.status) || order.cancel_requested;
  $("act-cancel-confirm").hidden = true;
  $("actions-note").textContent = admin
    ? "Moves go CONFIRMED → PROCESSING → SHIPPED → DELIVERED; an order not yet shipped can be cancelled with a refund."
    : "Read only: a moderator can look at orders but only an admin can move or cancel them.";
}

async function openOrder(orderId) {
  state.openOrderId = orderId;
  const generation = state.generation;
  $("action-message").textContent = "";
  try {
    const { body } = await api(`/api/v1/admin/orders/${encodeURIComponent(orderId)}`);
    if (generation !== state.generation || state.openOrderId !== orderId) return;
    renderOrder(body);
    $("order-detail").scrollIntoView({ block: "start" });
  } catch (error) {
    if (generation === state.generation) showMessage(`Order ${shortId(orderId)} could not be opened. ${error.message}`);
  }
}

function closeOrder() {
  state.openOrderId = null;
  state.openOrder = null;
  $("order-detail").hidden = true;
  if (location.hash.startsWith("#order/")) history.replaceState(null, "", location.pathname);
}

async function act(path, body, done) {
  const order = state.openOrder;
  if (!order) return;
  const result = $("action-message");
  const buttons = $("actions").querySelectorAll("button");
  buttons.forEach((button) => {
    button.disabled = true;
  });
  result.className = "action-message";
  result.textContent = "Working…";
  try {
    const response = await api(`/api/v1/admin/orders/${encodeURIComponent(order.id)}/${path}`, { method: "POST", body });
    renderOrder(response.body);
    upsertOrder(response.body);
    result.className = "action-message ok";
    result.textContent = response.status === 202 ? `${done}: still running, refresh in a moment.` : `${done}.`;
  } catch (error) {
    renderActions(order);
    result.className = "action-message error";
    result.textContent = error.message;
  }
}

// --- the socket ---------------------------------------------------------------------

const CLOSE_REASONS = {
  4401: "the server refused the token (expired or not valid)",
  4408: "the connection was idle for too long",
  4429: "the page could not keep up with the messages",
  1013: "the server is busy (try again later)",
  1001: "the server is going away (restart)",
  1006: "the connection dropped",
  1011: "the server hit an error",
  1012: "the server is restarting",
};

function onMessage(raw) {
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    return; // not ours to show
  }
  const type = message.type || "";
  if (type === "ping") {
    state.socket.send(JSON.stringify({ type: "pong" }));
    return;
  }
  if (type === "pong") return;
  if (type === "welcome") {
    if (!message.staff && !message.admin) {
      showMessage("This token is not an admin's or a moderator's: the server sends it no alerts. Log in with a staff account.");
    }
    return;
  }
  if (type === "presence.changed") {
    refreshOnline();
    return;
  }
  addAlert(message);
  const data = message.data || {};
  if (data.order_id) {
    if (type === "order.created") {
      upsertOrder({ id: data.order_id, user_id: data.user_id, total: data.total, currency: data.currency, status: data.status, created_at: message.occurred_at });
    } else {
      refreshOrderRow(data.order_id);
    }
    if (state.openOrderId === data.order_id) openOrder(data.order_id);
  }
}

async function refreshOrderRow(orderId) {
  try {
    const { body } = await api(`/api/v1/admin/orders/${encodeURIComponent(orderId)}`);
    upsertOrder(body);
  } catch {
    // the alert itself is on the page; the list catches up on the next load
  }
}

function scheduleReconnect(generation, reason) {
  const delay = BACKOFF_MS[Math.min(state.attempt, BACKOFF_MS.length - 1)];
  state.attempt += 1;
  const seconds = Math.round(delay / 1000);
  setStatus(`Reconnecting in ${seconds}s (attempt ${state.attempt}): ${reason}`, "reconnecting");
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => {
    if (generation === state.generation) openSocket(generation);
  }, delay);
}

function openSocket(generation) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/ws`, ["bearer", state.token]);
  } catch {
    // a token with characters a subprotocol may not carry
    stop("Disconnected", "That is not an access token. Paste the access_token from the login answer.");
    return;
  }
  state.socket = socket;
  setStatus(state.attempt ? `Reconnecting (attempt ${state.attempt})…` : "Connecting…", "connecting");
  socket.onopen = () => {
    if (generation !== state.generation) return;
    const reconnected = state.attempt > 0;
    state.attempt = 0;
    setStatus("Connected", "connected");
    if (reconnected) {
      showMessage("");
      loadOrders(); // what was missed while away
      refreshOnline();
    }
  };
  socket.onmessage = (event) => {
    if (generation === state.generation) onMessage(event.data);
  };
  socket.onclose = (event) => {
    if (generation !== state.generation) return;
    const reason = CLOSE_REASONS[event.code] || `closed by the server (code ${event.code})`;
    if (event.code === 4401) {
      const expired = state.claims && state.claims.exp && state.claims.exp * 1000 <= Date.now() + 5000;
      stop(
        `Disconnected (${event.code})`,
        expired
          ? "Your session expired: log in again and paste a fresh access token."
          : `The server refused this token (${event.reason || "invalid token"}). Log in again and paste a fresh access token.`,
      );
      return;
    }
    scheduleReconnect(generation, reason);
  };
}

function stop(statusText, message) {
  state.generation += 1;
  clearTimeout(state.retryTimer);
  clearTimeout(state.expiryTimer);
  clearInterval(state.pollTimer);
  clearInterval(state.ordersTimer);
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.close();
    state.socket = null;
  }
  setStatus(statusText, "disconnected");
  $("who").textContent = "";
  if (message) showMessage(message);
}

function connect(token) {
  stop("Not connected");
  showMessage("");
  closeOrder();
  state.token = token;
  state.claims = readClaims(token);
  state.users.clear();
  $("orders").replaceChildren();
  $("alerts").replaceChildren();
  $("online").replaceChildren();
  $("online-count").textContent = "0";
  $("who").textContent = "";
  if (!state.claims || !state.claims.sub) {
    stop("Not connected", "That is not an access token. Paste the access_token from the login answer (three dot-separated parts).");
    return;
  }
  if (state.claims.exp && state.claims.exp * 1000 <= Date.now()) {
    stop("Not connected", `This token expired at ${when(state.claims.exp * 1000)}. Log in again and paste a fresh access token.`);
    return;
  }
  if (!isStaff()) {
    stop(
      "Not connected",
      "This token is not an admin's or a moderator's (its roles: " +
        `${roles().join(", ") || "none"}). The admin page needs a staff account.`,
    );
    return;
  }
  $("who").textContent = `Signed in as ${isAdmin() ? "admin" : "moderator (read only)"}`;
  const generation = state.generation;
  state.attempt = 0;
  openSocket(generation);
  loadOrders();
  refreshOnline();
  state.pollTimer = setInterval(refreshOnline, 5000);
  state.ordersTimer = setInterval(loadOrders, 15000); // status moves that raise no alert
  if (state.claims.exp) {
    // Tell the manager before the server closes the socket with 4401.
    const left = state.claims.exp * 1000 - Date.now();
    state.expiryTimer = setTimeout(() => {
      if (generation === state.generation) showMessage("Your session expired: log in again and paste a fresh access token.");
    }, Math.min(left, 2 ** 31 - 1));
  }
  const match = location.hash.match(/^#order\/(.+)$/);
  if (match) openOrder(decodeURIComponent(match[1]));
}

// --- wiring -------------------------------------------------------------------------

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("token").value.trim());
});

$("orders").addEventListener("click", followOrderLink);
$("alerts").addEventListener("click", followOrderLink);

function followOrderLink(event) {
  const link = event.target.closest("a.order-link");
  if (!link) return;
  event.preventDefault();
  history.replaceState(null, "", `#order/${link.dataset.orderId}`);
  if (state.token) openOrder(link.dataset.orderId);
}

$("detail-close").addEventListener("click", closeOrder);
for (const status of STAFF_STATUSES) {
  $(`act-${status.toLowerCase()}`).addEventListener("click", () =>
    act("status", { status }, `Moved to ${status}`),
  );
}
$("act-cancel").addEventListener("click", () => {
  $("act-cancel-confirm").hidden = false;
  $("act-cancel-confirm").disabled = false;
  $("action-message").className = "action-message";
  $("action-message").textContent = "Cancelling refunds the payment and releases the stock. Confirm to go ahead.";
});
$("act-cancel-confirm").addEventListener("click", () => act("cancel", undefined, "Cancelled with refund"));

window.addEventListener("error", (event) => {
  showMessage(`Something went wrong on this page: ${event.message}. Reload it to start again.`);
});
