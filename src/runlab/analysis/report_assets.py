"""Inline CSS and JS of the HTML report: no CDN, no network, works from a file:// URL."""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1rem 2rem 4rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #666; } .note { color: #666; font-style: italic; }
table { border-collapse: collapse; margin: .5rem 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td.text, th.text { text-align: left; }
td.text { max-width: 28rem; overflow-wrap: anywhere; }
th { background: #f4f4f4; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.best td { background: #cfeccf; } tr.tie td { background: #eef8ee; }
.verdict { font-weight: 600; }
.figs { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.figs img { max-width: 100%; border: 1px solid #eee; }
.diag { display: inline-block; margin: 0 1rem 1rem 0; text-align: center; font-size: 12px; }
.diag img { width: 160px; image-rendering: pixelated; border: 1px solid #ccc; }
#js-errors { color: #b00; white-space: pre-wrap; }
"""

# Installed first so that any later script error is visible in the page (and to tests).
ERROR_HOOK = """
window.addEventListener("error", function (e) {
  var box = document.getElementById("js-errors");
  var msg = (e.message || "error") + " @ " + (e.filename || "") + ":" + (e.lineno || "");
  if (box) { box.textContent += msg + "\\n"; } else { window.__jsErrors = (window.__jsErrors || []).concat(msg); }
});
"""

SORT_JS = """
(function () {
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    var text = raw !== null ? raw : cell.textContent.trim();
    var num = parseFloat(text);
    return (text !== "" && isFinite(text) && !isNaN(num)) ? num : text.toLowerCase();
  }
  function compare(a, b) {
    var an = typeof a === "number", bn = typeof b === "number";
    if (an && bn) { return a - b; }
    if (an !== bn) { return an ? -1 : 1; }  // numbers before text (NaN shows as text)
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  function sortBy(table, th, col) {
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var c = compare(key(r1.cells[col]), key(r2.cells[col]));
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.addEventListener("click", function () { sortBy(table, th, col); });
    });
  });
  document.body.setAttribute("data-ready", "1");
})();
"""

CHART_CSS = """
.chart { position: relative; margin: .5rem 0 1rem; }
.chart svg { border: 1px solid #eee; background: #fff; cursor: crosshair; user-select: none; }
.chart .legend { display: inline-block; vertical-align: top; margin-left: 1rem; font-size: 12px; max-width: 280px; }
.chart .legend span { display: inline-block; width: 12px; height: 3px; margin-right: 6px; vertical-align: middle; }
.chart .tip { position: absolute; pointer-events: none; background: rgba(255,255,255,.95); border: 1px solid #bbb; padding: 4px 6px; font-size: 12px; white-space: pre; display: none; }
.chart .axis text { font-size: 11px; fill: #444; } .chart .axis line { stroke: #ddd; }
"""

# The interactive learning-curve chart: pick a metric, hover for values, drag to zoom into a
# range of steps, double-click to reset. Data: <script type="application/json" id="curves">
# {metric: [{label, n, step: [...], mean: [...], low: [...], high: [...]}, ...]}.
CHART_JS = """
(function () {
  var box = document.getElementById("chart"); if (!box) { return; }
  var data = JSON.parse(document.getElementById("curves").textContent);
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var W = 760, H = 360, L = 60, R = 15, T = 15, B = 35, NS = "http://www.w3.org/2000/svg";
  var select = box.querySelector("select"), svg = box.querySelector("svg"), tip = box.querySelector(".tip");
  var legend = box.querySelector(".legend"), domain = null, drag = null;
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    (parent || svg).appendChild(e); return e;
  }
  function finite(v) { return v !== null && isFinite(v); }
  function ticks(lo, hi, n) {
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n || 1))), out = [];
    [1, 2, 5, 10].some(function (m) { if ((hi - lo) / (step * m) <= n) { step *= m; return true; } return false; });
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) { out.push(+v.toPrecision(10)); }
    return out;
  }
  function draw() {
    var groups = data[select.value]; while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var xs = [], ys = [];
    groups.forEach(function (g) { g.step.forEach(function (s, i) {
      if (domain && (s < domain[0] || s > domain[1])) { return; }
      xs.push(s); [g.mean[i], g.low[i], g.high[i]].forEach(function (v) { if (finite(v)) { ys.push(v); } });
    }); });
    if (!xs.length) { return; }
    var x0 = domain ? domain[0] : Math.min.apply(null, xs), x1 = domain ? domain[1] : Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; } if (y1 === y0) { y1 = y0 + 1; }
    var pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    var sx = function (v) { return L + (v - x0) / (x1 - x0) * (W - L - R); };
    var sy = function (v) { return T + (y1 - v) / (y1 - y0) * (H - T - B); };
    svg.setAttribute("data-x0", x0); svg.setAttribute("data-x1", x1);
    var axis = el("g", {"class": "axis"});
    ticks(x0, x1, 8).forEach(function (v) { el("line", {x1: sx(v), x2: sx(v), y1: T, y2: H - B}, axis);
      el("text", {x: sx(v), y: H - B + 14, "text-anchor": "middle"}, axis).textContent = v; });
    ticks(y0, y1, 6).forEach(function (v) { el("line", {x1: L, x2: W - R, y1: sy(v), y2: sy(v)}, axis);
      el("text", {x: L - 5, y: sy(v) + 4, "text-anchor": "end"}, axis).textContent = v; });
    el("text", {x: (L + W) / 2, y: H - 4, "text-anchor": "middle"}, axis).textContent = "step";
    el("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle", transform: "rotate(-90 14 " + (T + H - B) / 2 + ")"}, axis).textContent = select.value;
    var clip = el("clipPath", {id: "clip"}); el("rect", {x: L, y: T, width: W - L - R, height: H - T - B}, clip);
    legend.innerHTML = "";
    groups.forEach(function (g, k) {
      var c = COLORS[k % COLORS.length], top = [], bottom = [], line = [];
      g.step.forEach(function (s, i) {
        if (finite(g.mean[i])) { line.push(sx(s) + "," + sy(g.mean[i])); }
        if (finite(g.low[i]) && finite(g.high[i])) { top.push(sx(s) + "," + sy(g.high[i])); bottom.unshift(sx(s) + "," + sy(g.low[i])); }
      });
      if (top.length) { el("polygon", {points: top.concat(bottom).join(" "), fill: c, opacity: 0.18, "clip-path": "url(#clip)", "class": "band"}); }
      el("polyline", {points: line.join(" "), fill: "none", stroke: c, "stroke-width": 1.8, "clip-path": "url(#clip)", "class": "curve"});
      var item = document.createElement("div");
      item.innerHTML = '<span style="background:' + c + '"></span>';
      item.appendChild(document.createTextNode(g.label + " (n=" + g.n + ")")); legend.appendChild(item);
    });
    svg.__scale = {sx: sx, x0: x0, x1: x1};
  }
  function stepAt(evt) {
    var r = svg.getBoundingClientRect(), s = svg.__scale, px = (evt.clientX - r.left) * W / r.width;
    return s.x0 + (px - L) / (W - L - R) * (s.x1 - s.x0);
  }
  svg.addEventListener("mousemove", function (evt) {
    var at = stepAt(evt), lines = [];
    data[select.value].forEach(function (g) {
      var best = 0; g.step.forEach(function (s, i) { if (Math.abs(s - at) < Math.abs(g.step[best] - at)) { best = i; } });
      if (finite(g.mean[best])) { lines.push(g.label + "  step " + g.step[best] + ": " + (+g.mean[best].toPrecision(4)) +
        (finite(g.low[best]) ? "  [" + (+g.low[best].toPrecision(4)) + ", " + (+g.high[best].toPrecision(4)) + "]" : "")); }
    });
    tip.textContent = lines.join("\\n"); tip.style.display = lines.length ? "block" : "none";
    tip.style.left = (evt.offsetX + 14) + "px"; tip.style.top = (evt.offsetY + 10) + "px";
  });
  svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  svg.addEventListener("mousedown", function (evt) { drag = stepAt(evt); });
  svg.addEventListener("mouseup", function (evt) {
    var end = stepAt(evt);
    if (drag !== null && Math.abs(end - drag) > (svg.__scale.x1 - svg.__scale.x0) / 100) {
      domain = [Math.min(drag, end), Math.max(drag, end)]; draw();
    }
    drag = null;
  });
  svg.addEventListener("dblclick", function () { domain = null; draw(); });
  select.addEventListener("change", function () { domain = null; draw(); });
  draw();
})();
"""
