// Exact decimals at the instrument's tick and lot, and the ladder and tape views.
"use strict";

// Prices and sizes arrive as decimal strings; the page never turns them into floats
// before it has to draw. An amount is held as an integer count of 10^-dp units.
const Dec = {
  places(step) {
    if (step === null || step === undefined) return null;
    const s = String(step), i = s.indexOf(".");
    return i < 0 ? 0 : s.replace(/0+$/, "").length - i - 1;
  },
  placesOf(text) { const i = String(text).indexOf("."); return i < 0 ? 0 : String(text).length - i - 1; },
  toInt(text, dp) {
    let s = String(text), neg = s.startsWith("-");
    if (neg) s = s.slice(1);
    const [w, f = ""] = s.split(".");
    const n = Number(w + (f + "0".repeat(dp)).slice(0, dp));
    return neg ? -n : n;
  },
  fromInt(n, dp) {
    const neg = n < 0, s = String(Math.abs(n)).padStart(dp + 1, "0");
    const out = dp ? `${s.slice(0, -dp)}.${s.slice(-dp)}` : s;
    return neg ? "-" + out : out;
  },
  // at least dp places, never fewer than the text has (a sub-tick print is not clipped)
  fmt(text, dp) {
    if (text === null || text === undefined || text === "") return "";
    const places = Math.max(dp ?? 0, Dec.placesOf(text));
    return Dec.fromInt(Dec.toInt(text, places), places);
  },
};

function utcTime(ns) { return new Date(ns / 1e6).toISOString().slice(11, 23); }
function utcStamp(ns) { return new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 23) + " UTC"; }

// The ladder: asks above (best at the bottom), the spread row, bids below (best at the top).
// Each row: price, size, cumulative size from the best level; its depth bar is the
// cumulative size over the larger of the two sides' shown totals.
function ladderRows(book, depth, pdp, sdp) {
  const bids = [...book.bids].sort((a, b) => Dec.toInt(b[0], pdp) - Dec.toInt(a[0], pdp)).slice(0, depth);
  const asks = [...book.asks].sort((a, b) => Dec.toInt(a[0], pdp) - Dec.toInt(b[0], pdp)).slice(0, depth);
  const side = (levels) => {
    let cum = 0;
    return levels.map(([p, s]) => { cum += Dec.toInt(s, sdp); return {price: p, size: s, cum}; });
  };
  const b = side(bids), a = side(asks);
  const top = Math.max(b.length ? b[b.length - 1].cum : 0, a.length ? a[a.length - 1].cum : 0) || 1;
  return {bids: b, asks: a, top, best: [bids[0], asks[0]]};
}

function spreadAndMid(bestBid, bestAsk, pdp) {
  if (!bestBid || !bestAsk) return null;
  const b = Dec.toInt(bestBid[0], pdp), a = Dec.toInt(bestAsk[0], pdp);
  const sum = a + b;  // mid = sum / 2: one more place when the sum is odd
  const mid = sum % 2 === 0 ? Dec.fromInt(sum / 2, pdp) : Dec.fromInt(sum * 5, pdp + 1);
  const bps = ((a - b) / (sum / 2)) * 1e4;
  return {spread: Dec.fromInt(a - b, pdp), mid, bps: bps >= 1 ? bps.toFixed(2) : bps.toPrecision(2)};
}

function renderLadder(table, book, depth, pdp, sdp) {
  const view = ladderRows(book, depth, pdp, sdp);
  const row = (cls, lv) => {
    const pct = ((lv.cum / view.top) * 100).toFixed(1);
    return `<tr class="${cls}" style="--depth:${pct}%"><td class="px">${Dec.fmt(lv.price, pdp)}</td>` +
      `<td>${Dec.fmt(lv.size, sdp)}</td><td class="cum">${Dec.fromInt(lv.cum, sdp)}</td></tr>`;
  };
  const sm = spreadAndMid(view.best[0], view.best[1], pdp);
  const mid = sm ? `<tr class="mid"><td colspan="3">spread <b id="spread">${sm.spread}</b> ` +
    `(${sm.bps} bps) · mid <b id="mid">${sm.mid}</b></td></tr>`
    : `<tr class="mid"><td colspan="3">one-sided book</td></tr>`;
  const asks = view.asks.map((lv) => row("ask", lv)).reverse();
  table.tBodies[0].innerHTML = [...asks, mid, ...view.bids.map((lv) => row("bid", lv))].join("");
}

function tapeRow(t, pdp, sdp) {
  const tr = document.createElement("tr");
  tr.className = t.side; tr.dataset.seq = t.seq;
  tr.innerHTML = `<td>${utcTime(t.ts_event)}</td><td class="side">${t.side}</td>` +
    `<td class="px">${Dec.fmt(t.price, pdp)}</td><td>${Dec.fmt(t.size, sdp)}</td>`;
  return tr;
}

// One <optgroup> per venue; an option's label is the venue's symbol and, where it differs,
// the canonical id; its value names the stream as the protocol does (venue, native symbol).
function fillPicker(sel, streams, keep) {
  sel.innerHTML = "";
  const groups = new Map();
  for (const s of streams) {
    if (!groups.has(s.venue)) {
      const g = document.createElement("optgroup");
      g.label = s.venue; groups.set(s.venue, g); sel.appendChild(g);
    }
    const o = document.createElement("option");
    o.value = JSON.stringify([s.venue, s.symbol]);
    o.textContent = s.canonical && s.canonical !== s.symbol ? `${s.symbol} · ${s.canonical}` : s.symbol;
    groups.get(s.venue).appendChild(o);
  }
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
}
