"""The vfs methods added for WebHDFS: xattrs by path, concat, content summary, capacity."""

from __future__ import annotations

from pathlib import Path

import pytest
from vfsenv import ME, chunks, open_vfs, read_all

from nsd import errors
from nsd.vfs import Vfs


async def test_xattr_flags_and_persistence(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.write_file("/f", chunks(b"x"), caller=ME)
    await vfs.set_xattr("/f", "user.a", b"1", replace=False, caller=ME)
    with pytest.raises(errors.Exists):
        await vfs.set_xattr("/f", "user.a", b"2", replace=False, caller=ME)
    with pytest.raises(errors.NotFound):
        await vfs.set_xattr("/f", "user.b", b"2", create=False, caller=ME)
    await vfs.set_xattr("/f", "user.a", b"3", create=False, caller=ME)
    await vfs.set_xattr("/f", "user.b", b"4", caller=ME)
    await vfs.remove_xattr("/f", "user.b", caller=ME)
    with pytest.raises(errors.NotFound):
        await vfs.remove_xattr("/f", "user.b", caller=ME)
    assert await vfs.get_xattrs("/f", caller=ME) == {"user.a": b"3"}
    await vfs.close()
    await vfs.store.close(checkpoint=False)  # recovery replays the journal
    again = await open_vfs(tmp_path)
    try:
        assert await again.get_xattrs("/f", caller=ME) == {"user.a": b"3"}
        again.ns.check()
    finally:
        await again.close()
        await again.store.close(checkpoint=True)


async def test_concat_appends_in_order_and_removes_sources(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.write_file("/t", chunks(b"T"), caller=ME)
    await vfs.write_file("/s1", chunks(b"one"), caller=ME)
    await vfs.write_file("/s2", chunks(b"", b"two"), caller=ME)
    node = await vfs.concat("/t", ["/s1", "/s2"], caller=ME)
    assert node.size == 7 and await read_all(vfs, "/t") == b"Tonetwo"
    assert (tmp_path / "ufs" / "t").read_bytes() == b"Tonetwo"
    for gone in ("/s1", "/s2"):
        with pytest.raises(errors.NotFound):
            await vfs.stat(gone, caller=ME)
    with pytest.raises(errors.Invalid):
        await vfs.concat("/t", ["/t"], caller=ME)
    await vfs.mkdir("/d", caller=ME)
    with pytest.raises(errors.IsDir):
        await vfs.concat("/t", ["/d"], caller=ME)
    assert await read_all(vfs, "/t") == b"Tonetwo"


async def test_content_summary_and_capacity(vfs: Vfs) -> None:
    await vfs.mkdir("/a/b", caller=ME, parents=True)
    await vfs.write_file("/a/f", chunks(b"12345"), caller=ME)
    await vfs.write_file("/a/b/g", chunks(b"12"), caller=ME)
    await vfs.symlink("/a/f", "/a/l", caller=ME)
    assert await vfs.content_summary("/a", caller=ME) == (7, 3, 2)
    assert await vfs.content_summary("/a/f", caller=ME) == (5, 1, 0)
    total, used, free = await vfs.capacity()
    assert total > 0 and 0 <= free <= total and used <= total
