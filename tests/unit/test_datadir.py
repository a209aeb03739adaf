from __future__ import annotations

from pathlib import Path

import pytest

from nsd.datadir import DataDir
from nsd.errors import DataDirLocked, NotFormatted


def test_format_writes_version_and_private_token(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "d")
    dd.format("file:///tmp/x")
    dd.check_version()
    assert dd.token_file.stat().st_mode & 0o777 == 0o600
    assert len(dd.read_token()) >= 32
    assert dd.root_ufs == "file:///tmp/x"
    with pytest.raises(NotFormatted, match="already formatted"):
        dd.format("file:///tmp/y")


def test_unformatted_or_future_dirs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFormatted, match="no VERSION"):
        DataDir(tmp_path).check_version()
    (tmp_path / "VERSION").write_text("99\n")
    with pytest.raises(NotFormatted, match="format version '99'"):
        DataDir(tmp_path).check_version()


def test_lock_is_exclusive_and_names_the_holder(tmp_path: Path) -> None:
    import os

    a, b = DataDir(tmp_path), DataDir(tmp_path)
    a.lock()
    with pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
        b.lock()
    a.unlock()
    b.lock()
    b.unlock()
