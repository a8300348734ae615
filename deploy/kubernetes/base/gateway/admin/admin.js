// Live admin dashboard: one WebSocket to /ws (token as a subprotocol, never in the URL),
// alerts and new orders pushed by the ws-gateway, online users polled from the API.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;
let pollTimer = null;

function item(text, className) {
  const li = document.createElement("li");
  li.textContent = text; // textContent: nothing from the server is interpreted as HTML
  if (className) li.className = className;
  return li;
}

function prepend(list, li, limit = 50) {
  list.prepend(li);
  while (list.children.length > limit) list.lastChild.remove();
}

async function refreshOnline(token) {
  const response = await fetch("/api/v1/admin/presence", {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) return;
  const body = await response.json();
  const users = body.user_ids || [];
  $("online-count").textContent = String(users.length);
  $("online").replaceChildren(...users.map((u) => item(u)));
}

function onMessage(token, raw) {
  const message = JSON.parse(raw);
  const type = message.type || "";
  if (type === "ping") {
    socket.send(JSON.stringify({ type: "pong" }));
    return;
  }
  if (type === "welcome") return;
  const data = message.data || {};
  const when = new Date().toLocaleTimeString();
  if (type === "order.created") {
    prepend($("orders"), item(`${when} order ${data.order_id || data.id || ""} ${data.total ?? ""} ${data.currency ?? ""}`));
  }
  prepend($("alerts"), item(`${when} ${type} ${JSON.stringify(data)}`, `alert-${type.replace(".", "-")}`));
  if (type === "presence.changed") refreshOnline(token);
}

function connect(token) {
  if (socket) socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`, ["bearer", token]);
  $("status").textContent = "Connecting…";
  socket.onopen = () => { $("status").textContent = "Connected"; };
  socket.onclose = (event) => { $("status").textContent = `Disconnected (${event.code})`; };
  socket.onmessage = (event) => onMessage(token, event.data);
  clearInterval(pollTimer);
  refreshOnline(token);
  pollTimer = setInterval(() => refreshOnline(token), 5000);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("token").value.trim());
});
