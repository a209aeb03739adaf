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
            ufs.write("escape/empty", chunks(b"")),
            ufs.write("leak", chunks(b"")),
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
        await ufs.write("inner", chunks(b""))  # the link inside is replaced, not written through
        assert not (root / "inner").is_symlink() and (root / "real").read_bytes() == b"mine"
        assert (root / "inner").read_bytes() == b""
    finally:
        await ufs.close()


def test_the_walk_below_the_root_agrees_with_realpath(tmp_path: Path) -> None:
    # stays_beneath lstats only below the (resolved) root; it must answer what realpath does
    from nsd.ufs.adapters.local_scan import inside, stays_beneath

    root, outside = (tmp_path / "root").resolve(), tmp_path / "outside"
    (root / "d" / "e").mkdir(parents=True)
    (outside / "o").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"")
    links = {
        "in_dir": "d",  # relative, inside
        "in_abs": str(root / "d" / "e"),
        "out_dir": str(outside),
        "out_rel": "../outside/o",
        "chain_out": "in_dir/../../outside",  # through an inside link, then out
        "chain_in": "in_dir/e",
        "to_root": ".",
        "dangling": "nowhere",
        "dangling_out": "../nowhere",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    os.symlink("../../outside", root / "d" / "up2")  # from a subdirectory
    names = [*links, "d", "d/e", "d/f", "d/up2", "missing", "d/missing"]
    cases = [[*first.split("/"), *rest] for first in names for rest in ([], ["x"], ["o"], ["e", "y"])]
    for parts in cases:
        expected = inside(str(root), os.path.realpath(root.joinpath(*parts)))
        assert stays_beneath(str(root), parts) == expected, parts
    assert not stays_beneath(str(root), ["out_dir"]) and stays_beneath(str(root), ["chain_in", "x"])


async def test_no_file_system_call_of_a_local_mount_runs_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confinement walk (an lstat per component) and every call on the mount's files run in
    worker threads: a mount on a hung NFS server must not stall the daemon's event loop."""
    import threading

    root = tmp_path / "root"
    (root / "a/b").mkdir(parents=True)
    ufs = open_ufs(root.as_uri())  # resolves the root once, when mounted
    on_loop: list[str] = []
    loop_thread = threading.current_thread()
    for name in ("lstat", "stat", "open", "scandir", "rename", "replace", "unlink", "link", "mkdir", "rmdir"):
        real = getattr(os, name)

        def spy(*args: object, _real: object = real, _name: str = name, **kwargs: object) -> object:
            if threading.current_thread() is loop_thread and str(root) in str(args[0] if args else ""):
                on_loop.append(_name)
            return _real(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(os, name, spy)
    try:
        await ufs.write("a/b/f", chunks(b"data"))
        await ufs.append("a/b/f", chunks(b"+more"), at=4)
        assert await ufs.read("a/b/f", 0, 100) == b"data+more"
        assert (await ufs.stat("a/b/f")).size == 9
        assert [s.name async for s in ufs.list("a/b")] == ["f"]
        await ufs.truncate("a/b/f", 4)
        await ufs.link("a/b/f", "a/b/g")
        await ufs.rename("a/b/g", "a/h")
        await ufs.mkdir("a/c/d")
        await ufs.delete("a/h")
        await ufs.delete("a/c", recursive=True)
    finally:
        await ufs.close()
    assert on_loop == []
    assert sorted(os.listdir(root / "a")) == ["b"] and os.listdir(root / "a/b") == ["f"]


async def test_a_hung_mount_does_not_hold_up_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each local mount runs its calls on its own threads: with every thread of one stuck (its
    file server hung), another mount still answers at once."""
    import asyncio
    import threading

    from nsd.ufs.adapters import local

    monkeypatch.setattr(local, "WORKERS", 2)
    hung_root, fine_root = tmp_path / "hung", tmp_path / "fine"
    for root in (hung_root, fine_root):
        root.mkdir()
        (root / "f").write_bytes(b"x")
    hung, fine = open_ufs(hung_root.as_uri()), open_ufs(fine_root.as_uri())
    release, real_stat = threading.Event(), os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(str(hung_root)):
            release.wait(10)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    stuck = [asyncio.ensure_future(hung.stat("f")) for _ in range(3)]  # more than its threads
    try:
        await asyncio.sleep(0.05)
        assert (await asyncio.wait_for(fine.stat("f"), 2)).size == 1
        assert not any(t.done() for t in stuck)
    finally:
        release.set()
        await asyncio.gather(*stuck)
        await hung.close()
        await fine.close()
