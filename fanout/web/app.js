// Live page: speaks the same public protocol as any trader (docs/protocol.md).
"use strict";
const DEPTH = 15, TAPE = 20, CANDLES = 90;
const $ = (id) => document.getElementById(id);
let ws, current = null, book = null, lastSeq = 0, lastEpoch = 0, lastTrade = [0, 0], gaps = 0, updates = 0, latency = null;
let candles = new Map(), interval = 1, dirty = false, chartDirty = false;

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${location.search}`);
  ws.onopen = () => { setConn("live"); ws.send(JSON.stringify({op: "list", id: 1})); };
  ws.onclose = (ev) => { setConn("stale", `reconnecting (${ev.code} ${ev.reason || ""})`); current = null; setTimeout(connect, 1000); };
  ws.onmessage = (ev) => { for (const msg of JSON.parse(ev.data)) handle(msg); };
}

function setConn(state, text) { const b = $("conn"); b.className = "badge " + state; b.textContent = text || state; }

function handle(msg) {
  switch (msg.type) {
    case "streams": {
      const sel = $("symbol"), keep = sel.value;
      sel.innerHTML = "";
      for (const s of msg.streams) {
        if (!s.channels.includes("book")) continue; // a consolidated stream: its own channel
        const o = document.createElement("option");
        o.value = JSON.stringify([s.venue, s.symbol]); o.textContent = `${s.symbol} (${s.venue})`;
        sel.appendChild(o);
      }
      if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
      if (sel.options.length) pick(JSON.parse(sel.value));
      break;
    }
    case "snapshot":
      book = {bids: new Map(msg.bids), asks: new Map(msg.asks)}; lastSeq = msg.seq; lastEpoch = msg.epoch;
      $("h-state").textContent = `live (snapshot: ${msg.reason})`; dirty = true; break;
    case "book":
      // Seqs count within an epoch: a delta of another one waits for its fresh snapshot.
      if (!book || msg.epoch !== lastEpoch || msg.seq <= lastSeq) break;
      if (msg.first > lastSeq + 1) { gaps++; book = null; resubscribe(); break; }
      for (const [p, s] of msg.bids) Number(s) === 0 ? book.bids.delete(p) : book.bids.set(p, s);
      for (const [p, s] of msg.asks) Number(s) === 0 ? book.asks.delete(p) : book.asks.set(p, s);
      lastSeq = msg.seq; updates++; latency = Date.now() * 1e6 - msg.ts_recv; dirty = true; break;
    case "trade": // once each, by (epoch, seq)
      if (msg.epoch === lastTrade[0] && msg.seq <= lastTrade[1]) break;
      lastTrade = [msg.epoch, msg.seq]; addTrade(msg); break;
    case "candles": candles = new Map(msg.bars.map((b) => [b.start, b])); chartDirty = true; break;
    case "candle":
      if (msg.interval === interval) { candles.set(msg.start, msg); chartDirty = true; }
      break;
    case "status": $("h-state").textContent = `${msg.state} (${msg.reason})`; break;
    case "error": console.warn("hub error", msg.code, msg.message); break;
  }
}

function channels(venue, symbol) {
  return [{channel: "book", venue, symbol}, {channel: "trades", venue, symbol},
          {channel: "candles", venue, symbol, interval}, {channel: "status", venue, symbol}];
}

function pick([venue, symbol]) {
  if (current) ws.send(JSON.stringify({op: "unsubscribe", channels: channels(current[0], current[1])}));
  current = [venue, symbol]; book = null; lastSeq = 0; lastEpoch = 0; lastTrade = [0, 0]; candles = new Map();
  $("tape").tBodies[0].innerHTML = "";
  ws.send(JSON.stringify({op: "subscribe", id: 2, channels: channels(venue, symbol)}));
}

function resubscribe() { if (current) { const c = current; current = null; pick(c); } }

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

function drawChart() {
  const canvas = $("chart"), ctx = canvas.getContext("2d");
  const w = canvas.width = canvas.clientWidth, h = canvas.height = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const bars = [...candles.values()].sort((a, b) => a.start - b.start).slice(-CANDLES);
  canvas.dataset.candles = bars.length;
  if (!bars.length) return;
  const hi = Math.max(...bars.map((b) => Number(b.high))), lo = Math.min(...bars.map((b) => Number(b.low)));
  const span = hi - lo || 1, pad = 14, step = (w - 60) / CANDLES;
  const y = (v) => pad + (hi - Number(v)) / span * (h - 2 * pad);
  ctx.font = "11px system-ui"; ctx.fillStyle = "#81a1c1";
  ctx.fillText(String(hi), w - 56, pad); ctx.fillText(String(lo), w - 56, h - pad);
  bars.forEach((b, i) => {
    const x = 4 + i * step + step / 2, up = Number(b.close) >= Number(b.open);
    ctx.strokeStyle = ctx.fillStyle = up ? "#a3be8c" : "#bf616a";
    ctx.beginPath(); ctx.moveTo(x, y(b.high)); ctx.lineTo(x, y(b.low)); ctx.stroke();
    const top = y(up ? b.close : b.open), bottom = y(up ? b.open : b.close);
    ctx.fillRect(x - step * 0.35, top, step * 0.7, Math.max(1, bottom - top));
  });
  const last = bars[bars.length - 1];
  $("c-last").textContent = `O ${last.open} H ${last.high} L ${last.low} C ${last.close} V ${last.volume} (${last.trades} trades)`;
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
$("interval").onchange = (e) => {
  const c = current; if (c) ws.send(JSON.stringify({op: "unsubscribe", channels: [{channel: "candles", venue: c[0], symbol: c[1], interval}]}));
  interval = Number(e.target.value); candles = new Map(); chartDirty = true;
  if (c) ws.send(JSON.stringify({op: "subscribe", id: 3, channels: [{channel: "candles", venue: c[0], symbol: c[1], interval}]}));
};
setInterval(() => { if (dirty) { render(); dirty = false; } if (chartDirty) { drawChart(); chartDirty = false; } }, 100);
setInterval(() => { $("h-rate").textContent = updates; updates = 0; }, 1000);
setInterval(() => { if (ws && ws.readyState === 1) ws.send(JSON.stringify({op: "ping"})); }, 15000);
connect();
