// Candles and volume on a time axis, drawn by TradingView's lightweight-charts (npm,
// fetched by scripts/install.sh into /vendor/). Without it the page says so and goes on.
"use strict";

const Candles = (() => {
  const UP = "#a3be8c", DOWN = "#bf616a";
  let chart = null, candles = null, volume = null, lastTime = null, bars = new Map();

  function init(el, note) {
    if (typeof LightweightCharts === "undefined") {
      note.hidden = false;
      return false;
    }
    chart = LightweightCharts.createChart(el, {
      autoSize: true,
      layout: {background: {color: "#131a21"}, textColor: "#c0c8d4", fontSize: 11},
      grid: {vertLines: {color: "#1e2731"}, horzLines: {color: "#1e2731"}},
      rightPriceScale: {borderColor: "#2a3440"},
      timeScale: {borderColor: "#2a3440", timeVisible: true, secondsVisible: true, rightOffset: 3, barSpacing: 10},
      crosshair: {mode: LightweightCharts.CrosshairMode.Normal},
    });
    candles = chart.addCandlestickSeries({
      upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN,
      wickUpColor: UP, wickDownColor: DOWN,
    });
    candles.priceScale().applyOptions({scaleMargins: {top: 0.06, bottom: 0.28}});
    volume = chart.addHistogramSeries({priceScaleId: "volume", priceFormat: {type: "volume"}, lastValueVisible: false, priceLineVisible: false});
    chart.priceScale("volume").applyOptions({scaleMargins: {top: 0.78, bottom: 0}});
    return true;
  }

  // Prices at the instrument's tick: `dp` places, moves of one tick.
  function setFormat(tick, dp) {
    if (!candles) return;
    const minMove = tick ? Number(tick) : 10 ** -dp;
    candles.applyOptions({priceFormat: {type: "price", precision: dp, minMove}});
  }

  function setSpan(seconds) {
    if (chart) chart.applyOptions({timeScale: {timeVisible: seconds < 86400, secondsVisible: seconds < 60}});
  }

  const point = (b) => {
    const time = Math.floor(b.start / 1e9), up = Number(b.close) >= Number(b.open);
    return [
      {time, open: Number(b.open), high: Number(b.high), low: Number(b.low), close: Number(b.close)},
      {time, value: Number(b.volume), color: up ? "#a3be8c66" : "#bf616a66"},
    ];
  };

  // All bars at once (a `candles` snapshot, another interval): sorted by start.
  function setBars(list) {
    bars = new Map(list.map((b) => [b.start, b]));
    if (!candles) return;
    const sorted = [...bars.values()].sort((a, b) => a.start - b.start), pts = sorted.map(point);
    candles.setData(pts.map((p) => p[0]));
    volume.setData(pts.map((p) => p[1]));
    lastTime = pts.length ? pts[pts.length - 1][0].time : null;
    chart.timeScale().scrollToRealTime();
  }

  // One bar changed: the newest message for a start replaces older ones. The library
  // updates only its last bar in place; a change to an older bar redraws them all.
  function update(b) {
    bars.set(b.start, b);
    if (!candles) return;
    const [c, v] = point(b);
    if (lastTime !== null && c.time < lastTime) { setBars([...bars.values()]); return; }
    candles.update(c); volume.update(v); lastTime = c.time;
  }

  function visibleRange() {
    const r = chart ? chart.timeScale().getVisibleRange() : null;
    return r ? {from: r.from, to: r.to} : null;
  }

  return {init, setFormat, setSpan, setBars, update, visibleRange,
          get bars() { return bars; }, get ready() { return chart !== null; }};
})();
