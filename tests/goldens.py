"""Golden files of the durable formats, and the values they must decode to."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

GOLDEN = Path(__file__).resolve().parent / "golden"


def load_golden() -> ModuleType:
    """tests/golden/make_golden.py, which holds the values the golden files must decode to."""
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
