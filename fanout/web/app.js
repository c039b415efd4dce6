// Live page: speaks the same public protocol as any trader (docs/protocol.md), on /ws,
// or replays recorded data on /replay (?replay=<source>&from=..&to=..&speed=..).
"use strict";
const DEPTH = 12, TAPE = 40, RECORDED_NS = 300e9;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const REPLAY = params.get("replay");  // a replay request: /replay, not /ws
const BASE = {900: 300};  // an interval the protocol lacks, built from a shorter one
const S = {
  ws: null, streams: new Map(), current: null, pdp: 2, sdp: 0,
  book: null, lastSeq: 0, lastEpoch: 0, lastTrade: [0, 0], gaps: 0, updates: 0,
  latency: null, clock: null, recorded: Boolean(REPLAY), ended: false, userPicked: false,
  interval: Number($("interval").value), sawCandles: false, base: new Map(),
};
let dirty = false;

// --- connection ----------------------------------------------------------------------

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const path = REPLAY ? `/replay?${replayQuery()}` : `/ws${location.search}`;
  const ws = S.ws = new WebSocket(`${proto}://${location.host}${path}`);
  ws.onopen = () => {
    setConn(REPLAY ? "replay" : "live");
    if (REPLAY) ws.send(JSON.stringify(replayRequest()));
    else ws.send(JSON.stringify({op: "list", id: 1}));
  };
  ws.onclose = (ev) => {
    S.current = REPLAY ? S.current : null;
    if (REPLAY) {  // reconnecting would start the replay over
      if (!S.ended) banner("closed", `replay connection closed (${ev.code} ${ev.reason || ""}) before it ended`);
      setConn("stale", "replay over");
      return;
    }
    setConn("stale", `reconnecting (${ev.code} ${ev.reason || ""})`);
    setTimeout(connect, 1000);
  };
  ws.onmessage = (ev) => {
    const data = JSON.parse(ev.data);
    for (const msg of Array.isArray(data) ? data : [data]) handle(msg);
  };
}

// The request goes both in the URL (as tardis-machine takes it) and as the first message.
function replayQuery() {
  const q = new URLSearchParams();
  for (const k of ["from", "to", "speed", "channels", "symbols", "token"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("sources", REPLAY);
  return q.toString();
}

function replayRequest() {
  const req = {op: "replay", sources: REPLAY.split(",")};
  for (const k of ["from", "to"]) if (params.get(k)) req[k] = params.get(k);
  if (params.get("speed")) req.speed = params.get("speed") === "max" ? "max" : Number(params.get("speed"));
  if (params.get("channels")) req.channels = params.get("channels").split(",");
  if (params.get("symbols")) req.symbols = params.get("symbols").split(",");
  return req;
}

function send(msg) { if (S.ws && S.ws.readyState === 1) S.ws.send(JSON.stringify(msg)); }
function setConn(state, text) { const b = $("conn"); b.className = "badge " + state; b.textContent = text || state; }
function banner(kind, text) { const b = $("banner"); b.className = "banner " + kind; b.textContent = text; b.hidden = false; }
const keyOf = (venue, symbol) => JSON.stringify([venue, symbol]);
const mine = (msg) => S.current && msg.venue === S.current[0] && msg.symbol === S.current[1];

// --- messages ------------------------------------------------------------------------

// A recorded stream (hub run/demo of a file, or /replay) is hours or years behind the
// wall clock: its own event time is the page's clock then, and there is no latency.
// A message without an event time (Gemini's book updates carry none: ts_event 0) still
// tells by its receive time that the stream is recorded.
function observe(msg) {
  if (!mine(msg)) return;
  if (msg.ts_event) S.clock = Math.max(S.clock || 0, msg.ts_event);
  if (msg.ts_recv && Math.abs(Date.now() * 1e6 - msg.ts_recv) > RECORDED_NS) S.recorded = true;
}

function handle(msg) {
  if (REPLAY && msg.venue && msg.symbol && ["instrument", "snapshot", "book", "trade"].includes(msg.type)) learn(msg);
  observe(msg);
  switch (msg.type) {
    case "streams": onStreams(msg.streams); break;
    case "replay": onReplay(msg); break;
    case "snapshot":
      if (msg.channel !== "book") break;
      if (!mine(msg)) break;
      S.book = {bids: new Map(msg.bids), asks: new Map(msg.asks)};
      S.lastSeq = msg.seq; S.lastEpoch = msg.epoch;
      if (!S.streams.get(keyOf(msg.venue, msg.symbol))?.tick_size) {
        S.pdp = Math.max(0, ...[...msg.bids, ...msg.asks].map((l) => Dec.placesOf(l[0])));
        S.sdp = Math.max(0, ...[...msg.bids, ...msg.asks].map((l) => Dec.placesOf(l[1])));
        Candles.setFormat(null, S.pdp);
      }
      $("h-state").textContent = `live (snapshot: ${msg.reason})`; dirty = true; break;
    case "book": onBook(msg); break;
    case "trade":
      if (!mine(msg) || (msg.epoch === S.lastTrade[0] && msg.seq <= S.lastTrade[1])) break;
      S.lastTrade = [msg.epoch, msg.seq];  // once each, by (epoch, seq)
      addTrade(msg);
      if (REPLAY && !S.sawCandles) barFromTrade(msg);
      break;
    case "candles":
      if (!mine(msg)) break;
      S.sawCandles = true; S.base = new Map(msg.bars.map((b) => [b.start, b])); showBars(); break;
    case "candle":
      if (!mine(msg) || msg.interval !== baseInterval()) break;
      S.sawCandles = true; S.base.set(msg.start, msg); showBar(msg.start); break;
    case "status":
      if (!mine(msg)) break;
      $("h-state").textContent = `${msg.state} (${msg.reason})`;
      if (msg.state === "closed") {
        S.recorded = true;
        const why = msg.reason === "subscribe" ? "" : ` (${msg.reason})`;
        banner("closed", `stream closed: its source ended${why}; the book is final`);
        setConn("stale", "closed");
      }
      break;
    case "error": console.warn("hub error", msg.code, msg.message); break;
  }
}

function onStreams(streams) {
  S.streams = new Map(streams.filter((s) => s.channels.includes("book")).map((s) => [keyOf(s.venue, s.symbol), s]));
  const sel = $("symbol"), want = params.get("symbol");
  fillPicker(sel, [...S.streams.values()], sel.value);
  // ?symbol= (native or canonical) until the viewer picks: a replay's streams appear as it goes
  const preset = want && [...S.streams.values()].find((s) => [s.symbol, s.canonical].includes(want));
  if (preset && !S.userPicked) sel.value = keyOf(preset.venue, preset.symbol);
  else if (want && !S.userPicked) setTimeout(() => send({op: "list", id: 1}), 1000);
  if (sel.options.length && sel.value !== JSON.stringify(S.current)) pick(JSON.parse(sel.value));
}

// A replay names its streams as it goes (its ``instrument`` message first, with the units):
// the picker grows with them.
function learn(msg) {
  const key = keyOf(msg.venue, msg.symbol);
  if (S.streams.has(key)) return;
  const {venue, symbol, canonical = null, tick_size = null, lot_size = null} = msg;
  S.streams.set(key, {venue, symbol, canonical, tick_size, lot_size});
  fillPicker($("symbol"), [...S.streams.values()], $("symbol").value || key);
  if (!S.current) pick([msg.venue, msg.symbol]);
}

function onReplay(msg) {
  S.recorded = true;
  if (msg.state === "playing") {
    const speed = msg.speed === undefined ? "" : ` at ${msg.speed}${typeof msg.speed === "number" ? "×" : ""}`;
    banner("info", `replay of ${(msg.sources || []).join(", ")}: ${msg.from} → ${msg.to}${speed}`);
    $("h-state").textContent = "replay playing";
  } else if (msg.state === "ended") {
    S.ended = true;
    if (msg.clock) S.clock = msg.clock;
    banner("ended", `replay ended at ${msg.clock ? utcStamp(msg.clock) : "?"} after ${msg.events} events`);
    $("h-state").textContent = "replay ended"; setConn("stale", "replay ended"); dirty = true;
  }
}

function onBook(msg) {
  // Seqs count within an epoch: a delta of another one waits for its fresh snapshot.
  if (!mine(msg) || !S.book || msg.epoch !== S.lastEpoch || msg.seq <= S.lastSeq) return;
  if (msg.first > S.lastSeq + 1) {
    S.gaps++;
    if (!REPLAY) { S.book = null; resubscribe(); return; }  // a replay cannot be asked again
  }
  for (const [p, s] of msg.bids) Number(s) === 0 ? S.book.bids.delete(p) : S.book.bids.set(p, s);
  for (const [p, s] of msg.asks) Number(s) === 0 ? S.book.asks.delete(p) : S.book.asks.set(p, s);
  S.lastSeq = msg.seq; S.updates++; dirty = true;
  if (msg.ts_recv) S.latency = S.recorded ? null : Date.now() * 1e6 - msg.ts_recv;
}

// --- subscriptions -------------------------------------------------------------------

const baseInterval = () => BASE[S.interval] || S.interval;

function channels(venue, symbol) {
  return [{channel: "book", venue, symbol}, {channel: "trades", venue, symbol},
          {channel: "candles", venue, symbol, interval: baseInterval()}, {channel: "status", venue, symbol}];
}

function pick([venue, symbol]) {
  if (S.current && !REPLAY) send({op: "unsubscribe", channels: channels(...S.current)});
  S.current = [venue, symbol];
  Object.assign(S, {book: null, lastSeq: 0, lastEpoch: 0, lastTrade: [0, 0], base: new Map(), sawCandles: false, clock: null});
  if (!REPLAY) {  // another stream: recorded or closed only once it says so
    S.recorded = false; S.latency = null; $("banner").hidden = true;
    if (S.ws && S.ws.readyState === 1) setConn("live");
  }
  const meta = S.streams.get(keyOf(venue, symbol)) || {};
  S.pdp = Dec.places(meta.tick_size) ?? 2; S.sdp = Dec.places(meta.lot_size) ?? 0;
  Candles.setFormat(meta.tick_size, S.pdp);
  $("title").textContent = meta.canonical && meta.canonical !== symbol ? `${symbol} · ${meta.canonical} (${venue})` : `${symbol} (${venue})`;
  $("tape").tBodies[0].innerHTML = ""; $("ladder").tBodies[0].innerHTML = "";
  $("h-lat").textContent = "-";  // the clock or latency of this stream, once it has one
  showBars();
  if (!REPLAY) send({op: "subscribe", id: 2, channels: channels(venue, symbol)});
}

function resubscribe() { if (S.current) { const c = S.current; S.current = null; pick(c); } }

function changeInterval(seconds) {
  const before = baseInterval(), c = S.current;
  S.interval = seconds; Candles.setSpan(seconds);
  if (REPLAY) { S.base = new Map(); showBars(); return; }  // rebuilt from the trades to come
  if (before === baseInterval()) { showBars(); return; }
  S.base = new Map(); showBars();
  if (!c) return;
  send({op: "unsubscribe", channels: [{channel: "candles", venue: c[0], symbol: c[1], interval: before}]});
  send({op: "subscribe", id: 3, channels: [{channel: "candles", venue: c[0], symbol: c[1], interval: baseInterval()}]});
}

// --- candles -------------------------------------------------------------------------

// The bar of `interval` holding `start`, from the base bars (itself when the protocol has
// the interval): open of the first, close of the last, exact volume.
function barAt(start) {
  const span = S.interval * 1e9, from = start - (start % span);
  if (baseInterval() === S.interval) return S.base.get(start);
  const parts = [...S.base.values()].filter((b) => b.start >= from && b.start < from + span).sort((a, b) => a.start - b.start);
  if (!parts.length) return null;
  const vdp = Math.max(S.sdp, ...parts.map((b) => Dec.placesOf(b.volume)));
  return {
    start: from, open: parts[0].open, close: parts[parts.length - 1].close,
    high: parts.reduce((m, b) => (Number(b.high) > Number(m) ? b.high : m), parts[0].high),
    low: parts.reduce((m, b) => (Number(b.low) < Number(m) ? b.low : m), parts[0].low),
    volume: Dec.fromInt(parts.reduce((v, b) => v + Dec.toInt(b.volume, vdp), 0), vdp),
    trades: parts.reduce((n, b) => n + b.trades, 0),
  };
}

function showBars() {
  const starts = new Set([...S.base.keys()].map((s) => s - (s % (S.interval * 1e9))));
  const bars = baseInterval() === S.interval ? [...S.base.values()] : [...starts].map(barAt);
  Candles.setBars(bars); lastBarText();
}

function showBar(start) {
  const bar = barAt(start - (baseInterval() === S.interval ? 0 : start % (S.interval * 1e9)));
  if (bar) Candles.update(bar);
  lastBarText();
}

// A replay without candle messages: bars of the chosen interval from its trades.
function barFromTrade(t) {
  const span = S.interval * 1e9, start = t.ts_event - (t.ts_event % span), b = S.base.get(start);
  const vdp = Math.max(S.sdp, Dec.placesOf(t.size));
  if (!b) S.base.set(start, {start, open: t.price, high: t.price, low: t.price, close: t.price, volume: Dec.fmt(t.size, vdp), trades: 1});
  else {
    if (Number(t.price) > Number(b.high)) b.high = t.price;
    if (Number(t.price) < Number(b.low)) b.low = t.price;
    const dp = Math.max(vdp, Dec.placesOf(b.volume));
    Object.assign(b, {close: t.price, trades: b.trades + 1, volume: Dec.fromInt(Dec.toInt(b.volume, dp) + Dec.toInt(t.size, dp), dp)});
  }
  showBar(start);
}

function lastBarText() {
  const bars = Candles.bars, last = [...bars.values()].sort((a, b) => a.start - b.start).pop();
  $("chart").dataset.candles = bars.size;
  $("c-last").textContent = last
    ? `${utcStamp(last.start).slice(0, 19)} O ${Dec.fmt(last.open, S.pdp)} H ${Dec.fmt(last.high, S.pdp)} ` +
      `L ${Dec.fmt(last.low, S.pdp)} C ${Dec.fmt(last.close, S.pdp)} V ${Dec.fmt(last.volume, S.sdp)} (${last.trades} trades)`
    : "no bars yet";
}

// --- views ---------------------------------------------------------------------------

function addTrade(t) {
  const body = $("tape").tBodies[0];
  body.insertBefore(tapeRow(t, S.pdp, S.sdp), body.firstChild);
  while (body.rows.length > TAPE) body.deleteRow(-1);
}

function render() {
  if (S.book) {
    renderLadder($("ladder"), S.book, DEPTH, S.pdp, S.sdp);
    $("ladder").dataset.seq = S.lastSeq;
  }
  $("h-seq").textContent = S.lastSeq;
  $("h-gaps").textContent = S.gaps;
  $("h-trade").textContent = S.lastTrade[1] || "-";
  if (S.recorded && $("conn").textContent === "live") setConn("replay", "recorded");
  $("h-lat-label").textContent = S.recorded ? "replay clock (event time)" : "latency (event→page)";
  if (S.recorded) $("h-lat").textContent = S.clock ? utcStamp(S.clock) : "-";
  else if (S.latency !== null) $("h-lat").textContent = (S.latency / 1e6).toFixed(1) + " ms";
}

$("symbol").onchange = (e) => { S.userPicked = true; pick(JSON.parse(e.target.value)); };
$("interval").onchange = (e) => changeInterval(Number(e.target.value));
if (!Candles.init($("chart"), $("chart-note"))) $("chart").hidden = true;
Candles.setSpan(S.interval);
setInterval(() => { if (dirty) { render(); dirty = false; } }, 100);
setInterval(() => { $("h-rate").textContent = S.updates; S.updates = 0; dirty = true; }, 1000);
setInterval(() => { if (!REPLAY) send({op: "ping"}); }, 15000);
window.mdhub = {state: S, chartRange: () => Candles.visibleRange(), chartReady: () => Candles.ready,
                chartBars: () => [...Candles.bars.values()]};
connect();
