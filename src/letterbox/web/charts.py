"""Inline SVG for the usage pages: drawn with attributes only (no style), so the
Content-Security-Policy can forbid inline styles."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

PALETTE = ("#3b6ea5", "#e0863a", "#5a9e4b", "#c4464a", "#8a6bb5", "#8c6d5a", "#d27bb3", "#7f7f7f",
           "#b5b83b", "#3bb5c4")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def folder_bars(folders: list[dict[str, object]], width: int = 640) -> Markup:
    """One horizontal bar per folder, its length proportional to the folder's bytes."""
    rows = [f for f in folders if isinstance(f.get("bytes"), int)]
    biggest = max((int(f["bytes"]) for f in rows), default=0) or 1  # type: ignore[call-overload]
    label_w, bar_w, row_h = 160, width - 160 - 120, 26
    height = max(1, len(rows)) * row_h + 8
    parts = [
        f'<svg class="chart" role="img" aria-label="Usage per folder" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, f in enumerate(rows):
        y = 4 + i * row_h
        size = int(f["bytes"])  # type: ignore[call-overload]
        w = max(1, round(bar_w * size / biggest)) if size else 0
        name = escape(str(f.get("name", "")))
        parts.append(f'<text x="0" y="{y + 17}" font-size="13" fill="#222">{name}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="16" rx="2" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"><title>{name}: {human(size)}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 17}" font-size="12" fill="#444">'
                     f'{human(size)}, {int(f.get("messages", 0))} msg</text>')  # type: ignore[call-overload]
    parts.append("</svg>")
    return Markup("".join(parts))


def quota_bar(percent: float | None, width: int = 640) -> Markup:
    """The share of the quota in use; green, amber from 80%, red from 95%."""
    if percent is None:
        return Markup("")
    shown = max(0.0, min(100.0, percent))
    colour = "#c4464a" if percent >= 95 else "#e0a43a" if percent >= 80 else "#5a9e4b"
    w = round((width - 2) * shown / 100)
    return Markup(
        f'<svg class="quota" role="img" aria-label="Quota used: {percent:.1f}%" width="{width}" height="22" '
        f'viewBox="0 0 {width} 22" xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="1" y="1" width="{width - 2}" height="20" rx="3" fill="#eee" stroke="#bbb"/>'
        f'<rect x="1" y="1" width="{w}" height="20" rx="3" fill="{colour}"/>'
        f'<text x="{width / 2:.0f}" y="15" font-size="12" text-anchor="middle" fill="#111">{percent:.1f}%</text>'
        "</svg>"
    )
