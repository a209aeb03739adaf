from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from vfsenv import close_vfs, open_vfs

from nsd.vfs import Vfs


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[Vfs]:
    """A fresh vfs in tmp_path (see vfsenv.open_vfs); modules may define their own."""
    v = await open_vfs(tmp_path)
    yield v
    await close_vfs(v)
