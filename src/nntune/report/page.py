"""One self-contained HTML page: inline CSS, inline SVG charts, no network.

Written by hand rather than with a template engine: a report is a flat list of sections (a
heading, a paragraph, a table, a chart), and escaping every value with :func:`html.escape` in
one place is simpler to audit than a template language.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1150px;
 padding:0 1em;color:#1d2330;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;
 border-bottom:1px solid #dde;padding-bottom:.2em}
.sub{color:#667;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d6d9e0;padding:.25em .6em;text-align:right;vertical-align:top}
td.l{max-width:38em}
th{background:#f1f3f7;text-align:center}td.l,th.l{text-align:left}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:hover{background:#e3e7ef}
pre{background:#f6f7f9;border:1px solid #e1e4ea;padding:.8em;overflow:auto;font-size:.85em}
figure.chart{margin:.6em 0}figure.chart svg{max-width:100%;height:auto}
.verdict{font-size:1.15em;padding:.5em .8em;border-radius:4px;background:#eef3fb;
 display:inline-block}.good{color:#17663a}.bad{color:#a4161a}.muted{color:#778}
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #d6d9e0;border-radius:4px;
 padding:.4em .8em;min-width:7em}.card b{display:block;font-size:1.2em}
"""

# Click a header to sort by that column (numbers numerically, the rest as text); a second
# click reverses. A few lines of script instead of a table library: the page must open offline.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.dataset.dir !== 'up'; th.dataset.dir = up ? 'up' : 'down';
      function key(row){ var c = row.cells[col]; var t = c ? (c.dataset.v || c.textContent) : '';
        var n = parseFloat(t); return isNaN(n) ? t.toLowerCase() : n; }
      rows.sort(function(a, b){ var x = key(a), y = key(b);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number as a reader wants it (4 significant digits, ints as ints); None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return f"{value:.{digits}g}"
    return str(value)


class Page:
    """Sections appended in order, rendered once by :meth:`html`."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{esc(title)}</h1>"]
        if subtitle:
            self.parts.append(f"<p class='sub'>{esc(subtitle)}</p>")
        self.scripts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{esc(text)}</h2>")

    def text(self, text: str, css: str = "") -> None:
        cls = f" class='{esc(css)}'" if css else ""
        self.parts.append(f"<p{cls}>{esc(text)}</p>")

    def raw(self, markup: str) -> None:
        """Markup built by the caller (already escaped)."""
        self.parts.append(markup)

    def cards(self, items: Iterable[tuple[str, Any]]) -> None:
        cells = "".join(
            f"<div class='card'><span class='muted'>{esc(k)}</span><b>{esc(fmt(v))}</b></div>"
            for k, v in items
        )
        self.parts.append(f"<div class='cards'>{cells}</div>")

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        sortable: bool = False,
        left: int = 1,
    ) -> None:
        """A table; the first ``left`` columns are text (left aligned). A cell given as
        ``(shown_markup, sort_value)`` is inserted as markup (links) and sorts by the value."""
        cls = " class='sortable'" if sortable else ""
        head = "".join(
            f"<th{' class=l' if i < left else ''}>{esc(h)}</th>" for i, h in enumerate(headers)
        )
        body = []
        for row in rows:
            cells = []
            for i, cell in enumerate(row):
                align = " class='l'" if i < left else ""
                if isinstance(cell, tuple):
                    shown, sort_value = cell
                    cells.append(f"<td{align} data-v='{esc(sort_value)}'>{shown}</td>")
                else:
                    cells.append(f"<td{align}>{esc(fmt(cell))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(
            f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )
        if sortable and SORT_SCRIPT not in self.scripts:
            self.scripts.append(SORT_SCRIPT)

    def code(self, text: str) -> None:
        self.parts.append(f"<pre>{esc(text)}</pre>")

    def json(self, value: Any) -> None:
        self.code(json.dumps(value, indent=2, default=str))

    def chart(self, svg: str, caption: str = "") -> None:
        """An inline SVG chart (from :mod:`nntune.report.charts`)."""
        cap = f"<figcaption class='muted'>{esc(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure class='chart'>{svg}{cap}</figure>")

    def html(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        scripts = "".join(f"<script>{s}</script>" for s in self.scripts)
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(self.parts)
            + f"<p class='muted'>Written by nntune report on {stamp}.</p>{scripts}</body></html>"
        )


def link(href: str, text: str) -> str:
    return f"<a href='{esc(href)}'>{esc(text)}</a>"
