from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from daemon import Daemon, start


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start(tmp_path / "data")
    yield d
    if d.proc.poll() is None:
        d.kill()
