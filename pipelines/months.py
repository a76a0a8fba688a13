"""Payroll and service months as 'YYYY-MM' strings, the contract's spelling."""

from __future__ import annotations

from pipelines.settings import MONTH_RE, RunError


def _parse(month: str) -> tuple[int, int]:
    if not MONTH_RE.match(month):
        raise RunError(f"not a month (YYYY-MM): {month!r}")
    return int(month[:4]), int(month[5:7])


def parse_month(month: str) -> str:
    """A checked 'YYYY-MM' (RunError otherwise)."""
    _parse(month)
    return month


def shift_month(month: str, delta: int) -> str:
    y, m = _parse(month)
    k = y * 12 + (m - 1) + delta
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def months_between(first: str, last: str) -> int:
    """Number of months from first to last inclusive (0 if last < first)."""
    y1, m1 = _parse(first)
    y2, m2 = _parse(last)
    return max(0, (y2 * 12 + m2) - (y1 * 12 + m1) + 1)


def month_range(spec: str) -> list[str]:
    """'2020-01..2020-04' -> ['2020-01', ..., '2020-04']; a single month -> [month]."""
    if ".." in spec:
        first, last = (s.strip() for s in spec.split("..", 1))
    else:
        first = last = spec.strip()
    n = months_between(first, last)
    if n == 0:
        raise RunError(f"empty month range {spec!r}")
    return [shift_month(first, i) for i in range(n)]
