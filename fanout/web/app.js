// Live page: speaks the same public protocol as any trader (docs/protocol.md).
"use strict";
const DEPTH = 15, TAPE = 40;
const $ = (id) => document.getElementById(id);
let ws, current = null, book = null, lastSeq = 0, gaps = 0, updates = 0, latency = null;

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { setConn("live"); ws.send(JSON.stringify({op: "list", id: 1})); };
  ws.onclose = () => { setConn("stale", "reconnecting"); setTimeout(connect, 1000); };
  ws.onmessage = (ev) => { for (const msg of JSON.parse(ev.data)) handle(msg); };
}

function setConn(state, text) { const b = $("conn"); b.className = "badge " + state; b.textContent = text || state; }

function handle(msg) {
  switch (msg.type) {
    case "streams": {
      const sel = $("symbol");
      sel.innerHTML = "";
      for (const s of msg.streams) {
        const o = document.createElement("option");
        o.value = JSON.stringify([s.venue, s.symbol]); o.textContent = `${s.symbol} (${s.venue})`;
        sel.appendChild(o);
      }
      if (msg.streams.length) pick(JSON.parse(sel.value));
      break;
    }
    case "snapshot":
      book = {bids: new Map(msg.bids), asks: new Map(msg.asks)}; lastSeq = msg.seq;
      $("h-state").textContent = `live (snapshot: ${msg.reason})`; render(); break;
    case "book":
      if (!book) break;
      if (msg.seq <= lastSeq) break;
      if (msg.seq !== lastSeq + 1) { gaps++; book = null; resubscribe(); break; }
      for (const [p, s] of msg.bids) s === "0" || Number(s) === 0 ? book.bids.delete(p) : book.bids.set(p, s);
      for (const [p, s] of msg.asks) s === "0" || Number(s) === 0 ? book.asks.delete(p) : book.asks.set(p, s);
      lastSeq = msg.seq; updates++; latency = Date.now() * 1e6 - msg.ts_event; dirty = true; break;
    case "trade": addTrade(msg); break;
    case "status": $("h-state").textContent = `${msg.state} (${msg.reason})`; break;
    case "error": console.warn("hub error", msg.code, msg.message); break;
  }
}

function pick([venue, symbol]) {
  if (current) ws.send(JSON.stringify({op: "unsubscribe", channels: [
    {channel: "book", venue: current[0], symbol: current[1]}, {channel: "trades", venue: current[0], symbol: current[1]}]}));
  current = [venue, symbol]; book = null; lastSeq = 0; $("tape").tBodies[0].innerHTML = "";
  ws.send(JSON.stringify({op: "subscribe", id: 2, channels: [
    {channel: "book", venue, symbol}, {channel: "trades", venue, symbol}]}));
}

function resubscribe() { if (current) { const c = current; current = null; pick(c); } }

let dirty = false;
function render() {
  if (!book) return;
  const bids = [...book.bids].sort((a, b) => Number(b[0]) - Number(a[0])).slice(0, DEPTH);
  const asks = [...book.asks].sort((a, b) => Number(a[0]) - Number(b[0])).slice(0, DEPTH);
  const rows = [];
  for (let i = 0; i < DEPTH; i++) {
    const b = bids[i] || ["", ""], a = asks[i] || ["", ""];
    rows.push(`<tr><td class="bid">${b[1]}</td><td class="bid">${b[0]}</td><td class="ask">${a[0]}</td><td class="ask">${a[1]}</td></tr>`);
  }
  $("ladder").tBodies[0].innerHTML = rows.join("");
  $("h-seq").textContent = lastSeq;
  $("h-gaps").textContent = gaps;
  if (latency !== null) $("h-lat").textContent = (latency / 1e6).toFixed(1) + " ms";
}

function addTrade(t) {
  const body = $("tape").tBodies[0];
  const tr = document.createElement("tr");
  const time = new Date(t.ts_event / 1e6).toISOString().slice(11, 23);
  tr.innerHTML = `<td>${time}</td><td class="${t.side}">${t.side}</td><td>${t.price}</td><td>${t.size}</td>`;
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > TAPE) body.deleteRow(-1);
}

$("symbol").onchange = (e) => pick(JSON.parse(e.target.value));
setInterval(() => { if (dirty) { render(); dirty = false; } }, 100);
setInterval(() => { $("h-rate").textContent = updates; updates = 0; }, 1000);
connect();
