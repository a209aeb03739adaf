"""Every namespace image version has a golden checkpoint (tests/golden/image/) that still loads
into the namespace it was made of, and that the current encoder reproduces byte for byte."""

from __future__ import annotations

import stat

import pytest
from goldens import GOLDEN, load_golden

from nsd.journal.checkpoint import read_checkpoint
from nsd.namespace import FileInode, Namespace, SpecialInode, SymlinkInode
from nsd.namespace.image import IMAGE_VERSIONS

g = load_golden()
HOW_TO_ADD = (
    "add a recipe for it to IMAGE_RECIPES in tests/golden/make_golden.py, then run "
    "`python tests/golden/make_golden.py` (it writes only the missing golden files)"
)


def load(version: int) -> tuple[int, Namespace]:
    """(the version in its header, the namespace) of the golden image of `version`."""
    txid, chunks = read_checkpoint(GOLDEN / "image" / g.image_file_name(version))
    assert txid == g.IMAGE_CHECKPOINT_TXID
    header = next(chunks)
    ns = Namespace.from_image([header, *chunks])
    ns.check()
    return header["version"], ns


@pytest.mark.parametrize("version", IMAGE_VERSIONS)
def test_every_image_version_has_a_golden_image(version: int) -> None:
    assert version in g.IMAGE_RECIPES, f"image version {version} has no recipe: {HOW_TO_ADD}"
    path = GOLDEN / "image" / g.image_file_name(version)
    assert path.exists(), f"image version {version} has no golden image {path.name}: {HOW_TO_ADD}"


def test_every_golden_image_is_of_a_known_version() -> None:
    known = {g.image_file_name(v) for v in IMAGE_VERSIONS}
    assert sorted(p.name for p in (GOLDEN / "image").iterdir() if p.name not in known) == []


@pytest.mark.parametrize("version", sorted(g.IMAGE_RECIPES))
def test_golden_image_loads_the_tree_it_was_made_of(version: int) -> None:
    header_version, ns = load(version)
    assert header_version == version
    doc = ns.resolve("/docs/résumé.txt")
    assert isinstance(doc, FileInode) and ns.resolve("/hard") is doc
    assert (doc.size, doc.nlink, doc.fingerprint, doc.layout) == (10, 2, None, [[0, 4, g.A], [4, 6, g.B]])
    link = ns.resolve("/docs/latest", follow=False)
    assert isinstance(link, SymlinkInode) and link.target == "résumé.txt"
    fifo = ns.resolve("/docs/fifo")
    assert isinstance(fifo, SpecialInode) and stat.S_ISFIFO(fifo.mode)
    assert list(ns.resolve_parent("/docs/x")[0].children) == ["f1", "f2", "f3", "f4", "fifo", "latest", "résumé.txt"]
    f1 = ns.resolve("/docs/f1")
    assert (f1.mode, f1.uid, f1.gid) == (0o100600, 1000, 2000)
    (mount,) = ns.mounts.values()
    assert (mount.point, mount.uri) == (ns.resolve("/data"), "file:///srv/data")
    assert mount.options == {"secret_key": "s3cr3t"}
    csv = ns.resolve("/data/a.csv")
    assert isinstance(csv, FileInode) and csv.mount == mount.mount_id
    assert (csv.fingerprint, csv.layout, ns.pinned) == (g.FP, [[0, 5, g.C]], {csv.ino})
    assert ns.kept == {g.A: 1, g.B: 1, g.C: 1}
    assert ns.next_ino == 13
    xattrs = {doc.ino: {"user.note": b"\x00\xffhi"}, ns.resolve("/docs").ino: {"user.a": b""}}
    assert ns.xattrs == (xattrs if version >= 2 else {})
    assert ns.persist_pending == ({doc.ino} if version >= 3 else set())
    assert ns.ttls == ({csv.ino: (g.T0 + 10**12, "free")} if version >= 3 else {})
    assert ns.intents == ({2: ("rename", [10, "a.csv", 10, "b.csv"])} if version >= 4 else {})
    assert ns.ino_limit == (g.INO_LIMIT if version >= 6 else 0)


@pytest.mark.parametrize("version", sorted(g.IMAGE_RECIPES))
def test_encoder_reproduces_the_golden_image(version: int) -> None:
    golden = (GOLDEN / "image" / g.image_file_name(version)).read_bytes()
    assert g.image_checkpoint(g.build_namespace(version)) == golden
    assert g.image_checkpoint(load(version)[1]) == golden
