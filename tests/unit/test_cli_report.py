"""`nsd report`'s tables: each figure in the unit its name says."""

from __future__ import annotations

from rich.console import Console

from nsd.cli.report import _kv_table


def render(title: str, rows: dict[str, object]) -> str:
    console = Console(width=300, record=True)
    console.print(_kv_table(title, rows))
    return console.export_text()


def test_nested_figures_are_counts_unless_named_bytes_and_lists_are_names() -> None:
    text = render("cluster", {"role": "leader", "cache": {"members": 3, "unreachable": ["n2"], "bytes_served": 2048}})
    assert "members 3, unreachable n2, bytes served 2.0 KiB" in text, text
    assert "unreachable none" in render("cluster", {"cache": {"unreachable": []}})


def test_top_level_figures() -> None:
    text = render("journal", {"last_txid": 12345, "segment_bytes": 1 << 20, "checkpoint_seconds": 0.25})
    assert "12,345" in text and "1.0 MiB" in text and "0.250" in text, text
