"""One conformance suite, run against every adapter that can run here (see conftest.ufs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nsd import errors
from nsd.ufs import Ufs


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


async def names(ufs: Ufs, path: str) -> dict[str, bool]:
    return {s.name: s.is_dir async for s in ufs.list(path)}


async def content(ufs: Ufs, path: str) -> bytes:
    size = (await ufs.stat(path)).size
    return await ufs.read(path, 0, size + 10)


async def test_write_stat_read(ufs: Ufs) -> None:
    st = await ufs.write("a.bin", body(b"hello ", b"world"))
    assert (st.size, st.is_dir) == (11, False)
    again = await ufs.stat("a.bin")
    assert (again.name, again.size, again.is_dir) == ("a.bin", 11, False)
    assert again.fingerprint() == st.fingerprint()
    assert await ufs.read("a.bin", 6, 100) == b"world"
    assert await ufs.read("a.bin", 2, 3) == b"llo"
    assert await ufs.read("a.bin", 11, 5) == b""


async def test_large_write_is_streamed_whole(ufs: Ufs) -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    await ufs.write("big", body(*[chunk] * 9))
    assert (await ufs.stat("big")).size == 9 << 20
    assert await ufs.read("big", (8 << 20) + 5, 10) == chunk[5:15]


async def test_overwrite_replaces(ufs: Ufs) -> None:
    await ufs.write("f", body(b"first version"))
    await ufs.write("f", body(b"v2"))
    assert await content(ufs, "f") == b"v2"


@pytest.mark.parametrize("empty", [[], [b""]])
async def test_an_empty_body_replaces_too(ufs: Ufs, empty: list[bytes]) -> None:
    await ufs.write("f", body(b"first version"))
    assert (await ufs.write("f", body(*empty))).size == 0
    assert await content(ufs, "f") == b"" and (await ufs.stat("f")).size == 0
    assert await names(ufs, "") == {"f": False}


@pytest.mark.parametrize("chunks", [[], [b""], [b"", b"x"], [b"one"], [b"a", b"", b"b", b"c"]])
async def test_a_body_of_any_number_of_chunks(ufs: Ufs, chunks: list[bytes]) -> None:
    st = await ufs.write("n", body(*chunks))
    assert st.size == len(b"".join(chunks)) and await content(ufs, "n") == b"".join(chunks)
    assert await names(ufs, "") == {"n": False}


@pytest.mark.parametrize("good_chunks", [1, 3])
async def test_failed_write_leaves_old_content(ufs: Ufs, good_chunks: int) -> None:
    await ufs.write("f", body(b"old"))

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(good_chunks):
            yield b"new partial"
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        await ufs.write("f", broken())
    assert await content(ufs, "f") == b"old"
    assert await names(ufs, "") == {"f": False}  # no temporary object shows


async def test_missing_objects_are_not_found(ufs: Ufs) -> None:
    with pytest.raises(errors.NotFound):
        await ufs.stat("nope")
    with pytest.raises(errors.NotFound):
        await ufs.read("nope", 0, 1)
    with pytest.raises(errors.NotFound):
        await ufs.delete("nope")
    with pytest.raises(errors.NotFound):
        await ufs.rename("nope", "other")
    with pytest.raises(errors.NotFound):
        _ = [s async for s in ufs.list("nodir")]


async def test_mkdir_list_and_nesting(ufs: Ufs) -> None:
    await ufs.mkdir("d/e")
    await ufs.mkdir("d/e")  # existing is fine
    await ufs.mkdir("empty")
    await ufs.write("d/x", body(b"1"))
    await ufs.write("d/e/y", body(b"22"))
    assert (await ufs.stat("d")).is_dir
    assert (await ufs.stat("empty")).is_dir
    assert await names(ufs, "") == {"d": True, "empty": True}
    assert await names(ufs, "d") == {"e": True, "x": False}
    assert await names(ufs, "empty") == {}
    sizes = {s.name: s.size async for s in ufs.list("d/e")}
    assert sizes == {"y": 2}


async def test_list_many_entries(ufs: Ufs) -> None:
    await ufs.mkdir("many")
    for i in range(1100):
        if i % 100 == 0 or ufs.kind in ("memory", "local"):
            await ufs.write(f"many/f{i:05d}", body(b"x"))
    got = [s.name async for s in ufs.list("many")]
    assert len(got) == len(set(got))
    assert len(got) == (1100 if ufs.kind in ("memory", "local") else 11)
    pages = [[s.name for s in page] async for page in ufs.list_pages("many")]
    assert all(pages) and sorted(name for page in pages for name in page) == sorted(got)
    if ufs.kind in ("memory", "local"):
        assert len(pages) > 1  # a page at a time: each a step of the wrappers, not each entry


async def test_list_of_a_file_is_not_dir(ufs: Ufs) -> None:
    await ufs.write("f", body(b"x"))
    with pytest.raises(errors.NotDir):
        _ = [s async for s in ufs.list("f")]


async def test_mkdir_over_file_fails(ufs: Ufs) -> None:
    await ufs.write("f", body(b"x"))
    with pytest.raises((errors.Exists, errors.NotDir)):
        await ufs.mkdir("f")


async def test_delete(ufs: Ufs) -> None:
    await ufs.mkdir("d")
    await ufs.write("d/f", body(b"x"))
    with pytest.raises(errors.NotEmpty):
        await ufs.delete("d")
    await ufs.delete("d/f")
    with pytest.raises(errors.NotFound):
        await ufs.stat("d/f")
    assert (await ufs.stat("d")).is_dir  # a directory outlives its last file
    await ufs.delete("d")
    with pytest.raises(errors.NotFound):
        await ufs.stat("d")


async def test_delete_recursive(ufs: Ufs) -> None:
    await ufs.mkdir("t/u")
    await ufs.write("t/u/f", body(b"x"))
    await ufs.write("t/g", body(b"y"))
    await ufs.delete("t", recursive=True)
    with pytest.raises(errors.NotFound):
        await ufs.stat("t")
    assert await names(ufs, "") == {}


async def test_rename_file_replaces_target(ufs: Ufs) -> None:
    await ufs.write("a", body(b"A"))
    await ufs.write("b", body(b"B"))
    await ufs.rename("a", "b")
    assert await content(ufs, "b") == b"A"
    with pytest.raises(errors.NotFound):
        await ufs.stat("a")


async def test_rename_directory_moves_everything(ufs: Ufs) -> None:
    await ufs.mkdir("src/sub")
    await ufs.mkdir("src/emptysub")
    await ufs.write("src/f", body(b"1"))
    await ufs.write("src/sub/g", body(b"22"))
    await ufs.mkdir("dst")
    await ufs.rename("src", "dst/moved")
    with pytest.raises(errors.NotFound):
        await ufs.stat("src")
    assert await names(ufs, "dst/moved") == {"f": False, "sub": True, "emptysub": True}
    assert await content(ufs, "dst/moved/sub/g") == b"22"


async def test_rename_onto_nonempty_directory_fails(ufs: Ufs) -> None:
    await ufs.mkdir("a")
    await ufs.mkdir("b")
    await ufs.write("b/f", body(b"x"))
    with pytest.raises(errors.NotEmpty):
        await ufs.rename("a", "b")


async def test_append_and_truncate(ufs: Ufs) -> None:
    await ufs.write("log", body(b"line1\n"))
    st = await ufs.append("log", body(b"line2\n"), at=6)
    assert st.size == 12
    await ufs.append("log", body(b"LINE2\n"), at=6)  # an interrupted append's tail is dropped
    assert await content(ufs, "log") == b"line1\nLINE2\n"
    await ufs.truncate("log", 3)
    assert await content(ufs, "log") == b"lin"
    await ufs.truncate("log", 5)
    assert await content(ufs, "log") == b"lin\0\0"


async def test_bad_paths_are_invalid(ufs: Ufs) -> None:
    with pytest.raises(errors.Invalid):
        await ufs.stat("../escape")


async def test_describe_names_the_store(ufs: Ufs) -> None:
    d = ufs.describe()
    assert d["uri"] == ufs.uri
    assert d["kind"] == ufs.kind
