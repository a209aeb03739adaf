"""Units people read and type: byte sizes in binary units, durations such as `12h` or `1d`.

One formatter for every size nsd shows (CLI output, progress bars, reports, the status page,
doctor), so a size reads the same wherever it appears. Imports nothing: the CLI loads it at
start.
"""

from __future__ import annotations

BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def human_bytes(n: float) -> str:
    """`n` bytes in binary units: "512 B", "1.5 KiB", "4.0 MiB", "2.3 GiB" (one decimal above bytes)."""
    for unit in BINARY_UNITS:
        if abs(n) < 1024 or unit == BINARY_UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_duration(text: str) -> float:
    """Seconds in "30", "90s", "15m", "12h", "1d", "2w" (or "1.5h"); ValueError with a message
    naming the accepted forms for anything else, negative or not finite."""
    raw = text.strip().lower()
    scale = DURATION_UNITS.get(raw[-1:], 0) if raw else 0
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf") or number != number.strip():  # NaN fails the range too
        raise ValueError(f"not a duration: {text!r} (a number of seconds, or with a unit: 90s, 15m, 12h, 1d, 2w)")
    return value


def human_duration(seconds: float) -> str:
    """A short, rounded reading of a duration: "45s", "15m", "3h 20m", "2d 4h"."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f" {s % 60}s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f" {s % 3600 // 60}m" if s % 3600 // 60 else "")
    return f"{s // 86400}d" + (f" {s % 86400 // 3600}h" if s % 86400 // 3600 else "")
