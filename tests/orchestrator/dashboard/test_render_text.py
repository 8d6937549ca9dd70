"""Texts from the ledger in plotly figures (``orchestrator/dashboard/render.py``): shown as
written, never read as plotly's markup."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from clicloop.orchestrator.dashboard.render import figure_json

LINK = '<a href="https://evil.example/claim">Workers: click to claim unpaid wages</a>'


def test_a_reason_with_markup_is_text_in_the_figure_not_a_link():
    """Found 2026-12-06: a rejection reason holding ``<a href=...>`` drew a live link in the
    'Rejections by reason' chart, ``<span style=...>`` styled text."""
    fig = go.Figure(go.Bar(y=[LINK, "too fast"], x=[1, 2], orientation="h", name='<span style="font-size:60px">x</span>'))
    fig.update_layout(title={"text": "Rejections of <b>loop</b>"})
    shown = json.loads(figure_json(fig))
    assert shown["data"][0]["y"] == ['&lt;a href="https://evil.example/claim"&gt;Workers: click to claim unpaid wages&lt;/a&gt;',
                                     "too fast"]
    assert shown["data"][0]["name"].startswith("&lt;span") and shown["layout"]["title"]["text"] == "Rejections of &lt;b&gt;loop&lt;/b&gt;"
    assert "<" not in figure_json(fig)  # safe inside a <script> element too
    assert fig.data[0].y[0] == LINK  # the view's own figure is left as it was (the JSON export reads it)


def test_a_note_placed_on_a_category_follows_its_escaping():
    """Found 2026-12-07 in review: a bar's total, placed at ``y=<its version name>``, kept the raw
    name while the bars' categories were escaped: for a name with & or < it sat on no bar."""
    fig = go.Figure(go.Bar(y=["R&D-v2"], x=[3.0], orientation="h"))
    fig.add_annotation(y="R&D-v2", x=3.0, text="3.00 h", showarrow=False)
    shown = json.loads(figure_json(fig))
    assert shown["layout"]["annotations"][0]["y"] == shown["data"][0]["y"][0] == "R&amp;D-v2"
