"""Numbers for people: sizes and durations as the pages and the CLI print them."""
from __future__ import annotations


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_seconds(s: float) -> str:
    """0.0123 -> '12 ms', 3.2 -> '3.2 s', 125 -> '2 min 5 s'."""
    if s < 1:
        return f"{s * 1000:,.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"
