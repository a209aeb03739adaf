"""Interrupted under-storage changes: a crash (or a failure) between the UFS call and its record.

A "crash" here is a BaseException raised right after the UFS call returns (or in the middle of
an append's body): nothing after it runs, like a SIGKILL at that instant. The journal is then
abandoned without a checkpoint and the namespace rebuilt from it, as at a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from vfsenv import ME, chunks, open_vfs, read_all

from nsd import errors
from nsd.journal.ops import IntentDone
from nsd.namespace import Namespace
from nsd.namespace.intents import plan_intent
from nsd.ops.fsck import fsck
from nsd.vfs import Vfs


class Crash(BaseException):
    """The process died here."""


async def restart(vfs: Vfs, tmp_path: Path) -> Vfs:
    """Drop everything in memory (no checkpoint, no sealing) and recover from the journal."""
    await vfs.reconciler.close()
    await vfs.store.close(checkpoint=False)
    await vfs.mounts.close()
    fresh = await open_vfs(tmp_path)
    await fresh.reconciler.start()
    return fresh


def crash_after(vfs: Vfs, method: str) -> None:
    """The root UFS's `method` does its work, then the process dies."""
    ufs = vfs.mounts.ufs(0)
    real: Callable[..., Any] = getattr(ufs, method)

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise Crash(method)

    setattr(ufs, method, wrapped)


async def clean(vfs: Vfs) -> dict[str, Any]:
    report = await fsck(vfs, "/")
    assert report["clean"], report["problems"]
    assert not vfs.ns.intents
    vfs.ns.check()
    return report


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[list[Vfs]]:
    holder = [await open_vfs(tmp_path)]
    yield holder
    await holder[0].close()
    await holder[0].store.close(checkpoint=False)


async def test_replaced_content_rolls_forward_to_the_whole_new_object(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    node = await v.write_file("/f", chunks(b"old"), caller=ME)
    crash_after(v, "write")
    with pytest.raises(Crash):
        await v.write_file("/f", chunks(b"brand new content"), caller=ME)
    assert v.ns.get(node.ino).size == 3  # the namespace never heard of it
    v = vfs[0] = await restart(v, tmp_path)
    assert await read_all(v, "/f") == b"brand new content"
    assert (await v.stat("/f", caller=ME)).ino == node.ino
    await clean(v)


async def test_an_unacknowledged_append_is_cut_back(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    await v.write_file("/log", chunks(b"line1\n"), caller=ME)

    async def dies_midway() -> AsyncIterator[bytes]:
        yield b"line2 is half"
        raise Crash("append body")

    with pytest.raises(Crash):
        await v.append("/log", dies_midway(), caller=ME)
    assert (tmp_path / "ufs/log").read_bytes() == b"line1\nline2 is half"  # half an append in the UFS
    v = vfs[0] = await restart(v, tmp_path)
    assert await read_all(v, "/log") == b"line1\n"
    assert (tmp_path / "ufs/log").read_bytes() == b"line1\n"
    await clean(v)
    await v.append("/log", chunks(b"line2\n"), caller=ME)  # and appends go on from there
    assert await read_all(v, "/log") == b"line1\nline2\n"


async def test_a_removed_file_leaves_the_namespace(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    await v.mkdir("/d", caller=ME)
    await v.write_file("/d/f", chunks(b"x"), caller=ME)
    crash_after(v, "delete")
    with pytest.raises(Crash):
        await v.remove("/d/f", caller=ME)
    assert "f" in v.ns.resolve("/d").children  # type: ignore[attr-defined]
    v = vfs[0] = await restart(v, tmp_path)
    with pytest.raises(errors.NotFound):
        await v.stat("/d/f", caller=ME)
    await clean(v)


async def test_a_recursive_delete_cut_short_is_relisted(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    await v.mkdir("/t/a", caller=ME, parents=True)
    for name in ("x", "y"):
        await v.write_file(f"/t/a/{name}", chunks(name.encode()), caller=ME)
    ufs = v.mounts.ufs(0)

    async def partly(path: str, **_: Any) -> None:
        (tmp_path / "ufs/t/a/x").unlink()  # an object store deletes object by object
        raise Crash("delete")

    ufs.delete = partly  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await v.remove("/t", recursive=True, caller=ME)
    v = vfs[0] = await restart(v, tmp_path)
    assert sorted(n for n, _ in await v.list("/t/a", caller=ME)) == ["y"]
    await clean(v)


async def test_a_rename_keeps_the_inode(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    node = await v.write_file("/src", chunks(b"moving"), caller=ME)
    crash_after(v, "rename")
    with pytest.raises(Crash):
        await v.rename("/src", "/dst", caller=ME)
    v = vfs[0] = await restart(v, tmp_path)
    moved = await v.stat("/dst", caller=ME)
    assert moved.ino == node.ino and await read_all(v, "/dst") == b"moving"
    with pytest.raises(errors.NotFound):
        await v.stat("/src", caller=ME)
    await clean(v)


async def test_a_renamed_directory_keeps_its_inode_and_children(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    d = await v.mkdir("/dir", caller=ME)
    await v.write_file("/dir/f", chunks(b"inside"), caller=ME)
    crash_after(v, "rename")
    with pytest.raises(Crash):
        await v.rename("/dir", "/moved", caller=ME)
    v = vfs[0] = await restart(v, tmp_path)
    assert (await v.stat("/moved", caller=ME)).ino == d.ino
    assert await read_all(v, "/moved/f") == b"inside"
    await clean(v)


async def test_a_crash_before_the_ufs_call_changes_nothing(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    node = await v.write_file("/f", chunks(b"same"), caller=ME)
    ufs = v.mounts.ufs(0)

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise Crash("before")

    ufs.write = dies  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await v.write_file("/f", chunks(b"never"), caller=ME)
    v = vfs[0] = await restart(v, tmp_path)
    assert v.reconciler.reconciled == 1
    assert await read_all(v, "/f") == b"same" and (await v.stat("/f", caller=ME)).ino == node.ino
    await clean(v)


async def test_a_truncate_and_a_created_file_after_a_crash(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    await v.write_file("/t", chunks(b"0123456789"), caller=ME)
    crash_after(v, "truncate")
    with pytest.raises(Crash):
        await v.truncate("/t", 4, caller=ME)
    crash_after(v, "write")
    with pytest.raises(Crash):
        await v.write_file("/new", chunks(b"created"), caller=ME)  # no intent: the UFS alone has it
    v = vfs[0] = await restart(v, tmp_path)
    assert await read_all(v, "/t") == b"0123"
    await clean(v)  # an object only the UFS holds is undiscovered, not a problem
    assert await read_all(v, "/new") == b"created"


async def test_a_failed_ufs_call_is_reconciled_at_once(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    node = await v.write_file("/a", chunks(b"a"), caller=ME)
    ufs = v.mounts.ufs(0)
    real = ufs.rename

    async def answer_lost(src: str, dst: str) -> None:
        await real(src, dst)
        raise errors.Invalid("the connection dropped after the store acted")

    ufs.rename = answer_lost  # type: ignore[method-assign]
    with pytest.raises(errors.Invalid):
        await v.rename("/a", "/b", caller=ME)
    assert (await v.stat("/b", caller=ME)).ino == node.ino  # no restart needed
    assert not v.ns.intents
    await clean(v)


async def test_a_ufs_that_is_down_leaves_the_intent_open_until_it_answers(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    await v.write_file("/f", chunks(b"v1"), caller=ME)
    crash_after(v, "write")
    with pytest.raises(Crash):
        await v.write_file("/f", chunks(b"version two"), caller=ME)
    await v.reconciler.close()
    await v.store.close(checkpoint=False)
    await v.mounts.close()
    v = vfs[0] = await open_vfs(tmp_path)
    ufs = v.mounts.ufs(0)
    real = ufs.stat

    async def down(path: str) -> Any:
        raise errors.UfsUnavailable("under-storage is down")

    ufs.stat = down  # type: ignore[method-assign]
    assert await v.reconciler.start() == 1
    report = await fsck(v, "/")
    assert not report["clean"]
    kinds = {p["kind"]: p["detail"] for p in report["problems"]}
    assert kinds.keys() == {"pending_intent", "ufs_unreachable"}
    assert "down" in kinds["pending_intent"]
    ufs.stat = real  # type: ignore[method-assign]
    await clean(v)
    assert await read_all(v, "/f") == b"version two"


def test_open_intents_survive_a_checkpoint_image() -> None:
    ns = Namespace()
    first = plan_intent(ns, "rename", [1, "a", 1, "b"])
    ns.apply(first)
    ns.apply(plan_intent(ns, "append", [1, 7]))
    ns.apply(IntentDone(first.id))
    image = list(ns.to_image())
    assert image[0]["version"] == 4
    back = Namespace.from_image(image)
    back.check()
    assert back.intents == {2: ("append", [1, 7])} and back.next_intent == 3
    with pytest.raises(errors.Invalid):
        plan_intent(ns, "explode", [])
    with pytest.raises(errors.Corrupt):
        ns.apply(IntentDone(99))


async def test_retries_while_the_ufs_is_down_keep_one_intent(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    await v.write_file("/f", chunks(b"v1"), caller=ME)
    ufs = v.mounts.ufs(0)
    real_write, real_stat = ufs.write, ufs.stat

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise errors.UfsUnavailable("under-storage is down")

    ufs.write = ufs.stat = down  # type: ignore[method-assign]
    for _ in range(3):
        with pytest.raises(errors.UfsUnavailable):
            await v.write_file("/f", chunks(b"v2"), caller=ME)
    assert len(v.ns.intents) == 1  # taken over by each retry, not one per try
    ufs.write, ufs.stat = real_write, real_stat  # type: ignore[method-assign]
    await v.write_file("/f", chunks(b"v3"), caller=ME)  # the retry that works closes it
    assert not v.ns.intents and await read_all(v, "/f") == b"v3"
    await clean(v)


async def test_a_failed_seal_that_changed_nothing_closes_its_intent(vfs: list[Vfs], tmp_path: Path) -> None:
    v = vfs[0]
    node = await v.write_file("/f", chunks(b"base"), caller=ME)
    await v.write_at(node.ino, 4, b"+staged", stable=False, caller=ME)
    ufs = v.mounts.ufs(0)
    real_write, real_adopt = ufs.write, ufs.adopt

    async def full(*args: Any, **kwargs: Any) -> Any:
        raise errors.NoSpace("under-storage: No space left on device")

    # a seal streams the stage (write) or, to a local store, renames it into place (adopt)
    ufs.write = full  # type: ignore[method-assign]
    ufs.adopt = full  # type: ignore[method-assign]
    with pytest.raises(errors.NoSpace):
        await v.commit(node.ino, caller=ME)
    assert not v.ns.intents  # the UFS still holds what the journal says
    assert v.stager.get(node.ino) is not None  # and the staged bytes wait for the next try
    ufs.write, ufs.adopt = real_write, real_adopt  # type: ignore[method-assign]
    await v.commit(node.ino, caller=ME)
    assert await read_all(v, "/f") == b"base+staged"
    await clean(v)


async def test_a_seal_that_died_after_renaming_its_stage_into_place_rolls_forward(
    vfs: list[Vfs], tmp_path: Path
) -> None:
    v = vfs[0]
    node = await v.write_file("/s", chunks(b"0123456789"), caller=ME)
    await v.write_at(node.ino, 4, b"ab", stable=False, caller=ME)
    crash_after(v, "adopt")  # the stage is renamed over the UFS file, then the process dies
    with pytest.raises(Crash):
        await v.commit(node.ino, caller=ME)
    assert (tmp_path / "ufs/s").read_bytes() == b"0123ab6789"
    v = vfs[0] = await restart(v, tmp_path)
    assert await read_all(v, "/s") == b"0123ab6789"
    assert (await v.stat("/s", caller=ME)).ino == node.ino
    await clean(v)
