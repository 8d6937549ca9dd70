"""HTML: every view on one page, self-contained (plotly.js inline or from the app itself; no CDN),
key numbers and tables as text, a colour-blind-safe palette and a layout that reflows in a
narrow window. :func:`write_html_report` writes the file ``clicloop report --html`` produces."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from clicloop.orchestrator.config import Stop, WageFloor
from clicloop.orchestrator.dashboard.base import View
from clicloop.orchestrator.dashboard.source import Filters
from clicloop.orchestrator.credentials import redact_url

# a static file may load nothing from anywhere: the browser enforces it
STATIC_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:"

CSS = """
:root { --fg:#1a1a1a; --muted:#555; --line:#d0d0d0; --bg:#fff; --card:#f5f7fa; --accent:#0072B2; }
* { box-sizing:border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header, main, footer { max-width:1200px; margin:0 auto; padding:0 1rem; }
header h1 { font-size:1.45rem; margin:1rem 0 .2rem; }
.meta { color:var(--muted); margin:.2rem 0 .8rem; overflow-wrap:anywhere; }
nav ul { list-style:none; padding:0; margin:.4rem 0 1rem; display:flex; flex-wrap:wrap; gap:.35rem .9rem; }
nav a { color:var(--accent); }
form.filters { display:flex; flex-wrap:wrap; gap:.5rem 1rem; align-items:flex-end; background:var(--card); padding:.7rem; border-radius:6px; }
form.filters label { display:flex; flex-direction:column; font-size:.85rem; color:var(--muted); min-width:9rem; flex:1 1 9rem; }
form.filters select, form.filters input, form.filters button { font:inherit; padding:.25rem; max-width:100%; }
section.view { border-top:1px solid var(--line); margin-top:1.4rem; padding-top:.4rem; }
section.view h2 { font-size:1.2rem; margin:.6rem 0 .2rem; }
.summary { color:var(--muted); margin:.2rem 0 .6rem; max-width:75ch; }
.empty { background:#fff7e0; border-left:4px solid #E69F00; padding:.6rem .8rem; }
dl.numbers { display:grid; grid-template-columns:repeat(auto-fill,minmax(13rem,1fr)); gap:.5rem; margin:.5rem 0 1rem; }
dl.numbers .num { background:var(--card); border-radius:6px; padding:.45rem .6rem; }
dl.numbers dt { font-size:.8rem; color:var(--muted); overflow-wrap:anywhere; }
dl.numbers dd { margin:0; font-size:1.1rem; font-weight:600; font-variant-numeric:tabular-nums; overflow-wrap:anywhere; }
.figs { display:grid; grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr)); gap:.6rem; }
.fig { width:100%; min-height:240px; }
.table-wrap { overflow-x:auto; margin:.6rem 0 1rem; max-height:32rem; overflow-y:auto; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; font-size:.9rem; }
caption { text-align:left; font-weight:600; padding:.3rem 0; }
th, td { border-bottom:1px solid var(--line); padding:.25rem .55rem; text-align:right; white-space:nowrap; }
th:first-child, td:first-child, td.text { text-align:left; }
td.text { white-space:normal; min-width:10rem; }
thead th { position:sticky; top:0; background:var(--bg); }
.note { color:var(--muted); font-size:.85rem; }
footer { color:var(--muted); font-size:.85rem; margin:2rem auto 1rem; }
@media (max-width: 600px) { body { font-size:14px; } header h1 { font-size:1.2rem; } }
"""

PLOT_SCRIPT = """
(function () {
  var specs = document.querySelectorAll('script[type="application/json"][data-figure-for]');
  var done = [];
  specs.forEach(function (s) {
    var fig = JSON.parse(s.textContent);
    done.push(Plotly.newPlot(s.getAttribute('data-figure-for'), fig.data, fig.layout,
      {responsive: true, displaylogo: false, showSendToCloud: false}));
  });
  Promise.all(done).then(function () { document.body.setAttribute('data-plotted', String(done.length)); });
})();
"""


@dataclass
class PageOptions:
    """How the page is assembled: ``plotly_src`` is a URL (the app's own) or None to inline it;
    ``form`` holds the filter choices (server pages only); ``view_href`` links views opened alone."""

    title: str = "clicloop: the cost of human labor"
    ledger_label: str = ""
    filters: Filters = field(default_factory=Filters)
    target: float | None = None
    plotly_src: str | None = None
    form: dict[str, list[str]] | None = None
    view_href: str | None = None
    csp: str | None = STATIC_CSP


def _plain(values: Any) -> Any:
    """Text from the ledger as plotly shows it literally: plotly reads ``<a href>``, ``<span
    style>``, ``<b>`` ... in its texts as markup (a rejection reason drew a live link)."""
    if isinstance(values, str):
        return escape(values, quote=False)
    if isinstance(values, (list, tuple)) and any(isinstance(v, str) for v in values):
        return [escape(v, quote=False) if isinstance(v, str) else v for v in values]
    return values


def figure_json(fig: Any) -> str:
    """The figure as JSON that is safe inside a <script> element, its texts shown as written."""
    import plotly.graph_objects as go

    fig = go.Figure(fig)  # a copy: the view's own figure keeps its texts (the JSON export reads them)
    for trace in fig.data:
        for attr in ("x", "y", "name", "text", "hovertext"):
            if attr in trace and trace[attr] is not None:
                trace[attr] = _plain(trace[attr])
    if fig.layout.title.text:
        fig.layout.title.text = _plain(fig.layout.title.text)
    for note in fig.layout.annotations:  # placed on a category: escaped as the categories are, or it lands elsewhere
        note.update({k: _plain(note[k]) for k in ("x", "y", "text") if isinstance(note[k], str)})
    return fig.to_json().replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_page(views: list[View], opts: PageOptions) -> str:
    """One HTML page holding ``views``."""
    import plotly.offline

    head = [f"<meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">"]
    if opts.csp:
        head.append(f'<meta http-equiv="Content-Security-Policy" content="{escape(opts.csp)}">')
    head.append(f"<title>{escape(opts.title)}</title><style>{CSS}</style>")
    if any(v.figures for v in views):
        head.append(f'<script src="{escape(opts.plotly_src)}"></script>' if opts.plotly_src
                    else f"<script>{plotly.offline.get_plotlyjs()}</script>")
    f = opts.filters
    active = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f.__dict__.items() if v) or "none (everything in the ledger)"
    body = [f"<header><h1>{escape(opts.title)}</h1>",
            f'<p class="meta">Ledger {escape(opts.ledger_label)} · filters: {escape(active)} · generated '
            f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · read only</p>"]
    if opts.form is not None:
        body.append(_form(opts))
    body.append("<nav aria-label=\"views\"><ul>" + "".join(
        f'<li><a href="#{v.name}">{escape(v.title)}</a>'
        + (f' (<a href="{escape(opts.view_href.format(name=v.name))}">alone</a>)' if opts.view_href else "") + "</li>"
        for v in views) + "</ul></nav></header><main>")
    body += [_section(v) for v in views]
    body.append("</main><footer>Numbers are computed in SQL from the ledger; hover a chart for details, every key figure "
                "is also printed as text. Palette: Okabe-Ito (colour-blind safe).</footer>")
    if any(v.figures for v in views):
        body.append(f"<script>{PLOT_SCRIPT}</script>")
    return f"<!doctype html><html lang=\"en\"><head>{''.join(head)}</head><body>{''.join(body)}</body></html>"


def _section(v: View) -> str:
    out = [f'<section class="view" id="{v.name}" data-view="{v.name}"><h2>{escape(v.title)}</h2><p class="summary">{escape(v.summary)}</p>']
    if v.numbers:
        out.append('<dl class="numbers">' + "".join(
            f'<div class="num" data-key="{escape(n.key)}" data-value="{escape(_raw(n.value))}"><dt>{escape(n.label)}</dt>'
            f"<dd>{escape(n.text)}</dd></div>" for n in v.numbers) + "</dl>")
    if v.empty:
        out.append(f'<p class="empty" data-empty="{v.name}">{escape(v.empty)}</p>')
    if v.figures:
        out.append('<div class="figs">')
        for i, fig in enumerate(v.figures):
            fid = f"fig-{v.name}-{i}"
            label = (fig.layout.title.text or v.title) if fig.layout.title else v.title
            out.append(f'<div class="fig" id="{fid}" role="img" aria-label="{escape(label)}"></div>'
                       f'<script type="application/json" data-figure-for="{fid}">{figure_json(fig)}</script>')
        out.append("</div>")
    for i, t in enumerate(v.tables):
        head = "".join(f"<th scope=\"col\">{escape(c)}</th>" for c in t.columns)
        rows = "".join("<tr>" + "".join(
            f'<td data-col="{escape(k)}" data-value="{escape(_raw(val))}"{_cls(val)}>{escape(text)}</td>'
            for k, val, text in zip(t.keys, raw, texts)) + "</tr>" for raw, texts in zip(t.rows, t.texts))
        out.append(f'<div class="table-wrap"><table data-table="{v.name}-{i}"><caption>{escape(t.caption)}</caption>'
                   f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
        if t.note:
            out.append(f'<p class="note">{escape(t.note)}</p>')
    out += [f'<p class="note">{escape(n)}</p>' for n in v.notes]
    return "".join(out) + "</section>"


def _raw(value: Any) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _cls(value: Any) -> str:
    return ' class="text"' if isinstance(value, str) and len(value) > 24 else ""


def _form(opts: PageOptions) -> str:
    f, choices = opts.filters, opts.form or {}

    def select(name: str, label: str) -> str:
        current = getattr(f, name) or ""
        options = "".join(f'<option value="{escape(v)}"{" selected" if v == current else ""}>{escape(v or "all")}</option>'
                          for v in [""] + choices.get(name, []))
        return f'<label>{label}<select name="{name}">{options}</select></label>'

    dates = "".join(f'<label>{label}<input type="date" name="{name}" value="{escape(getattr(f, name) or "")}"></label>'
                    for name, label in (("date_from", "from (UTC)"), ("date_to", "to (UTC)")))
    target = f'<label>target metric<input type="number" step="0.001" min="0" max="1" name="target" value="{opts.target or ""}"></label>'
    return ('<form class="filters" method="get" aria-label="filters">' + select("loop", "loop") + select("backend", "backend")
            + select("model_version", "model version") + dates + target + '<button type="submit">apply</button></form>')


def write_html_report(ledger_url: str, out_path: str | Path, loop: str | None = None, *, floor: WageFloor | None = None,
                      target: float | None = None, filters: Filters | None = None, stops: Mapping[str, Stop] | None = None) -> Path:
    """Write every view of the ledger (one loop, or all) as ONE self-contained HTML file that
    opens without a network (plotly.js inline; a Content-Security-Policy forbids any fetch).
    The ledger is opened read-only. Returns the path written."""
    from clicloop.orchestrator.ledger.readonly import read_only_engine
    from clicloop.orchestrator.dashboard.views import build_views

    filters = filters or Filters(loop=loop)
    engine = read_only_engine(ledger_url)
    try:
        views = build_views(engine, filters, floor=floor, target=target, stops=stops)
    finally:
        engine.dispose()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(views, PageOptions(ledger_label=redact_url(ledger_url), filters=filters, target=target)), encoding="utf-8")
    return out


def page_json(views: list[View]) -> dict[str, Any]:
    """The views as JSON (numbers, tables, plotly figures) for the app's API."""
    return {v.name: {"title": v.title, "summary": v.summary, "empty": v.empty,
                     "numbers": [{"key": n.key, "label": n.label, "value": n.value, "text": n.text} for n in v.numbers],
                     "tables": [{"caption": t.caption, "columns": t.columns, "keys": t.keys, "rows": t.rows, "note": t.note}
                                for t in v.tables],
                     "figures": [json.loads(fig.to_json()) for fig in v.figures]} for v in views}
