"""The local adapter never leaves its root: symlinks placed in the directory lead nowhere outside."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nsd import errors
from nsd.ufs import open_ufs


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_symlinks_out_of_the_root_are_neither_listed_nor_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    (root / "real").write_bytes(b"mine")
    os.symlink(outside, root / "escape")  # a directory outside
    os.symlink(outside / "secret", root / "leak")  # a file outside
    os.symlink("real", root / "inner")  # inside: harmless
    os.symlink("../outside/secret", root / "dotdot")  # relative, but still outside
    ufs = open_ufs(root.as_uri())
    try:
        names = sorted([s.name async for s in ufs.list("")])
        assert names == ["inner", "real"]
        assert await ufs.read("inner", 0, 10) == b"mine"
        for call in (
            ufs.stat("escape"),
            ufs.stat("escape/secret"),
            ufs.read("leak", 0, 100),
            ufs.read("dotdot", 0, 100),
            ufs.write("escape/new", chunks(b"x")),
            ufs.write("leak", chunks(b"overwrite")),
            ufs.mkdir("escape/sub"),
            ufs.truncate("leak", 0),
            ufs.append("leak", chunks(b"more"), at=0),
        ):
            with pytest.raises(errors.Denied) as e:
                await call
            assert "outside the mount root" in e.value.message
        with pytest.raises(errors.Invalid):
            await ufs.stat("../outside/secret")
        with pytest.raises(errors.Invalid):
            await ufs.stat("a\0b")
        await ufs.delete("leak")  # removing the link itself is fine; its target stays
        assert not (root / "leak").is_symlink() and (outside / "secret").read_bytes() == b"not yours"
        assert sorted(os.listdir(outside)) == ["secret"]
    finally:
        await ufs.close()
