"""nsd/units.py: the one size formatter and the duration parser the CLI uses."""

from __future__ import annotations

import pytest

from nsd.units import human_bytes, human_duration, parse_duration


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (4 << 20, "4.0 MiB"),
        (16 << 30, "16.0 GiB"),
        (3 << 40, "3.0 TiB"),
        (2 << 60, "2.0 EiB"),
        (5000 << 60, "5000.0 EiB"),  # the largest unit goes on counting
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_bytes_uses_binary_units(n: int, shown: str) -> None:
    assert human_bytes(n) == shown


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("0", 0),
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("1d", 86400),
        ("2w", 1209600),
        ("1.5h", 5400),
        (" 2D ", 172800),
        ("0.5", 0.5),
    ],
)
def test_parse_duration_takes_seconds_or_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("junk", ["", " ", "h", "-1", "-1h", "1y", "12 h", "1d2h", "abc", "inf", "nan", "1e400", "1hh"])
def test_parse_duration_refuses_junk_naming_the_forms(junk: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration: .* 90s, 15m, 12h, 1d, 2w"):
        parse_duration(junk)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59.4, "59s"), (60, "1m"), (61, "1m 1s"), (3600, "1h"), (7320, "2h 2m"), (86400, "1d"), (1e5, "1d 3h")],
)
def test_human_duration_rounds_to_two_units(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown
