"""Values for people and for JSON: sizes and durations as printed, results as JSON documents."""
from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path


def jsonable(value: object) -> object:
    """A JSON-ready copy: times as ISO text, decimals as floats, NaN and +-Inf as null (JSON has no
    spelling for them), tuples as lists, keys as text, bytes as hex; anything else as its text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def significant(value: float) -> str:
    """A number to 4 significant digits, without exponents for everyday magnitudes: 1,025,000 not 1.025e+06."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-4):
        return f"{value:.4g}"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.4g}"


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
