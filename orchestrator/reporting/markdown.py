"""Text from the ledger in Markdown (the labor card, the post-deployment report)."""

from __future__ import annotations

from typing import Any


def md_text(text: Any) -> str:
    """Text from the ledger (a purpose, a reason, a version name) as Markdown shows it literally:
    no HTML a renderer would pass through (``<script>``), no link, emphasis or heading."""
    out = str(text).replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in "`*_[]#|":
        out = out.replace(mark, "\\" + mark)
    return " ".join(out.splitlines())  # \r, \n, \u2028 ...: a line break would start a heading or a list
