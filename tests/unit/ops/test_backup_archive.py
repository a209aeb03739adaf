"""Backups in-process: the archive format (GNU tar reads it), blocks of unpersisted files held
from before the checkpoint until streamed, and restores that refuse damaged archives and leave
nothing behind."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "cache"))
from cachevfs import BS, ME, Env, chunks, close, new_env, read_all

from nsd import errors
from nsd.blockstore import TierSpec
from nsd.datadir import DataDir
from nsd.namespace import FileInode
from nsd.ops import backup
from nsd.ops.backup_live import LiveBackup
from nsd.ops.cache import controls


def test_archive_writer_makes_a_tar_that_gnu_tar_reads(tmp_path: Path) -> None:
    w = backup.ArchiveWriter()
    members = {"a.json": b"{}", "journal/x.ckpt": os.urandom(3 * 512 + 5), "blocks/ab/empty": b""}
    out = bytearray()
    for name, data in members.items():
        out += w.header(name, len(data))
        for i in range(0, len(data), 1000):
            out += w.data(data[i : i + 1000])
    out += w.close()
    with tarfile.open(fileobj=io.BytesIO(bytes(out)), mode="r|gz") as raw:
        got = {m.name: raw.extractfile(m).read() for m in raw}  # type: ignore[union-attr]
    assert got == members
    path = tmp_path / "a.tar.gz"
    path.write_bytes(out)
    listed = subprocess.run(["tar", "-tzf", str(path)], check=True, capture_output=True, text=True).stdout
    assert listed.split() == list(members)
    import gzip

    assert len(gzip.decompress(out)) == backup.archive_size(len(d) for d in members.values())
    short = backup.ArchiveWriter()
    short.header("x", 1)
    with pytest.raises(ValueError, match="more data"):
        short.data(b"12")
    with pytest.raises(ValueError, match="still needs 1 bytes"):
        short.close()


async def take(env: Env, vfs, between: Callable | None = None) -> bytes:  # type: ignore[no-untyped-def]
    (env.tmp / "root.uri").write_text(f"memory://{env.store_name}\n")
    job = await LiveBackup.prepare(vfs, DataDir(env.tmp), {"block_size": BS})
    out = bytearray()

    async def write(piece: bytes) -> None:
        out.extend(piece)

    try:
        if between is not None:
            await between()
        await job.stream(write)
    finally:
        job.close()
    return bytes(out)


def layout_digests(vfs, path: str) -> list[str]:  # type: ignore[no-untyped-def]
    node = vfs.ns.resolve(path)
    assert isinstance(node, FileInode)
    return [e[2] for e in node.layout or ()]


async def test_blocks_of_files_persisted_and_freed_after_the_checkpoint_are_still_carried(tmp_path: Path) -> None:
    env = new_env(tmp_path / "a", root_options={"write_type": "MUST_CACHE"})
    env.tmp.mkdir()
    a, b = os.urandom(2 * BS + 3), os.urandom(BS)
    vfs = await env.open()
    try:
        await vfs.write_file("/a", chunks(a), caller=ME)
        await vfs.write_file("/b", chunks(b), caller=ME)
        gone = layout_digests(vfs, "/a") + layout_digests(vfs, "/b")
        assert vfs.cache is not None

        async def meanwhile() -> None:
            # After the checkpoint: /a reaches the UFS and is freed, /b is removed, and eviction
            # runs; without the backup's hold all five blocks would be gone from the store.
            await controls.persist_path(vfs, "/a")
            await controls.free_path(vfs, "/a")
            await vfs.remove("/b", caller=ME)
            await vfs.write_file("/c", chunks(os.urandom(BS)), caller=ME)  # after T: not carried
            assert vfs.cache is not None
            for d in gone:
                assert vfs.cache.blocks.has(d) and vfs.cache.must_keep(d)

        archive = await take(env, vfs, meanwhile)
        late = layout_digests(vfs, "/c")
        assert all(not vfs.cache.must_keep(d) for d in gone)  # released once streamed
    finally:
        await close(vfs)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
    assert names[0] == backup.MANIFEST and names[-1] == backup.END
    carried = {n.rsplit("/", 1)[1] for n in names if n.startswith("blocks/")}
    assert carried == set(gone) and not carried & set(late)

    (tmp_path / "archive").write_bytes(archive)
    target = tmp_path / "b"
    done = backup.restore_archive(tmp_path / "archive", target)
    assert done["blocks_restored"] == len(gone) and done["block_bytes_restored"] == len(a) + len(b)
    restored = Env(target, env.store_name, root_options={"write_type": "MUST_CACHE"})
    vfs = await restored.open()
    try:
        assert await read_all(vfs, "/a") == a and await read_all(vfs, "/b") == b
        assert vfs.ns.resolve("/a").fingerprint is None  # as of the backup: not yet persisted
    finally:
        await close(vfs)


async def sample_archive(tmp_path: Path) -> tuple[bytes, list[str]]:
    env = new_env(tmp_path / "src", root_options={"write_type": "MUST_CACHE"})
    env.tmp.mkdir()
    vfs = await env.open()
    try:
        await vfs.write_file("/f", chunks(os.urandom(3 * BS)), caller=ME)
        digests = layout_digests(vfs, "/f")
        return await take(env, vfs), digests
    finally:
        await close(vfs)


def repack(archive: bytes, edit: Callable[[str, bytes], bytes | None]) -> bytes:
    """The archive with each member's data passed through `edit` (None drops the member)."""
    w = backup.ArchiveWriter()
    out = bytearray()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|gz") as tar:
        for m in tar:
            data = edit(m.name, tar.extractfile(m).read())  # type: ignore[union-attr]
            if data is not None:
                out += w.member(m.name, data)
    return bytes(out + w.close())


def flip_first_block(name: str, data: bytes) -> bytes:
    if name.startswith("blocks/") and not getattr(flip_first_block, "done", False):
        flip_first_block.done = True  # type: ignore[attr-defined]
        return bytes([data[0] ^ 1]) + data[1:]
    return data


@pytest.mark.parametrize(
    ("edit", "error", "words"),
    [
        (flip_first_block, errors.Corrupt, "does not match its digest"),
        (lambda n, d: None if n.startswith("blocks/") else d, errors.Invalid, "lacks 3 blocks"),
        (lambda n, d: None if n == backup.END else d, errors.Invalid, "cut short"),
        (lambda n, d: None if n == backup.MANIFEST else d, errors.Invalid, "does not start with"),
        (lambda n, d: d if n != "root.uri" else None, errors.Invalid, "no root.uri"),
        (lambda n, d: d[:-8] if n.startswith("journal/") else d, errors.Corrupt, "checkpoint"),
    ],
    ids=["tampered-block", "missing-blocks", "no-end", "no-manifest", "no-root-uri", "bad-checkpoint"],
)
async def test_a_damaged_archive_is_refused_and_leaves_nothing(
    tmp_path: Path, edit: Callable[[str, bytes], bytes | None], error: type, words: str
) -> None:
    flip_first_block.done = False  # type: ignore[attr-defined]
    archive, _ = await sample_archive(tmp_path)
    bad = tmp_path / "bad"
    bad.write_bytes(repack(archive, edit))
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (tmp_path / "absent", empty):
        with pytest.raises(error, match=words):
            backup.restore_archive(bad, target)
        assert not target.exists() or not any(target.iterdir()), target


async def test_a_cut_archive_and_too_small_tiers_are_refused(tmp_path: Path) -> None:
    archive, digests = await sample_archive(tmp_path)
    cut = tmp_path / "cut"
    cut.write_bytes(archive[: len(archive) // 2])
    with pytest.raises(errors.Invalid, match="not a usable nsd backup"):
        backup.restore_archive(cut, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    whole = tmp_path / "whole"
    whole.write_bytes(archive)
    with pytest.raises(errors.NoSpace, match="cache_disk_bytes"):
        backup.restore_archive(whole, tmp_path / "y", [TierSpec(tmp_path / "y" / "blocks", BS)])
    assert not (tmp_path / "y").exists()
    # Two small tiers outside the data dir take the blocks between them.
    tiers = [TierSpec(tmp_path / "t0", BS), TierSpec(tmp_path / "t1", 2 * BS)]
    done = backup.restore_archive(whole, tmp_path / "z", tiers)
    assert done["blocks_restored"] == 3
    found = sorted(p.name for t in ("t0", "t1") for p in (tmp_path / t).glob("*/*"))
    assert found == sorted(digests) and len(list((tmp_path / "t0").glob("*/*"))) == 1


async def test_a_format_1_archive_still_restores(tmp_path: Path) -> None:
    archive, _ = await sample_archive(tmp_path)

    def as_format_1(name: str, data: bytes) -> bytes | None:
        if name == backup.MANIFEST:
            head = json.loads(data)
            for key in ("blocks", "block_bytes", "lost_blocks"):
                del head[key]
            head["format"] = 1
            return json.dumps(head).encode()
        return None if name.startswith("blocks/") or name == backup.END else data

    old = tmp_path / "old"
    old.write_bytes(repack(archive, as_format_1))
    done = backup.restore_archive(old, tmp_path / "r")
    assert done["format"] == 1 and done["blocks_restored"] == 0
    assert len(done["lost_blocks"]) == 3  # format 1 never carried blocks: reported, not refused
    assert (tmp_path / "r" / "VERSION").exists()


async def test_a_block_found_corrupt_while_streamed_is_listed_lost_and_restore_says_so(tmp_path: Path) -> None:
    env = new_env(tmp_path / "a", root_options={"write_type": "MUST_CACHE"})
    env.tmp.mkdir()
    vfs = await env.open()
    try:
        await vfs.write_file("/f", chunks(os.urandom(2 * BS)), caller=ME)
        victim = layout_digests(vfs, "/f")[0]

        async def rot() -> None:
            (env.tmp / "blocks" / victim[:2] / victim).write_bytes(b"rotten")

        archive = await take(env, vfs, rot)
    finally:
        await close(vfs)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        end = json.loads(tar.extractfile(backup.END).read())  # type: ignore[union-attr]
    assert end["lost_blocks"] == [victim] and end["blocks"] == 1
    (tmp_path / "archive").write_bytes(archive)
    done = backup.restore_archive(tmp_path / "archive", tmp_path / "b")
    assert done["lost_blocks"] == [victim] and done["blocks_restored"] == 1
