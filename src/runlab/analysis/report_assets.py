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
