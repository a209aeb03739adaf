"""The paged inode table behaves as a dict ino -> Inode, dense or sparse."""

from __future__ import annotations

import random

import pytest

from nsd.namespace.inode import FileInode
from nsd.namespace.table import PAGE, InodeTable


def node(ino: int) -> FileInode:
    return FileInode(ino, 1, 0o100644, 0, 0, 1, 0, 0, 0, 0, 0, None, None)


def test_matches_a_dict_through_random_inserts_and_deletes() -> None:
    rng = random.Random(7)
    table, model = InodeTable(), {}
    for step in range(20_000):
        ino = rng.randrange(1, 5 * PAGE)
        if ino in model and rng.random() < 0.7:
            del table[ino], model[ino]
        elif ino not in model:
            table[ino] = model[ino] = node(ino)
        if step % 2_000 == 0:
            assert list(table) == sorted(model) and len(table) == len(model)
    assert dict(table.items()) == model and table.last() == max(model)
    assert all(table.get(i) is model.get(i) and (i in table) == (i in model) for i in range(5 * PAGE + 2))


def test_sparse_pages_become_dicts_and_dense_again() -> None:
    table = InodeTable()
    for i in range(PAGE):
        table[i] = node(i)
    table[PAGE] = node(PAGE)  # new ids go to page 1 now
    for i in range(PAGE - 10):
        del table[i]
    assert isinstance(table.pages[0], dict) and sorted(table) == [*range(PAGE - 10, PAGE), PAGE]
    for i in range(PAGE // 2):
        table[i] = node(i)
    assert isinstance(table.pages[0], list) and len(table) == PAGE // 2 + 11
    for i in list(table):
        del table[i]
    assert list(table.pages) == [1] and len(table) == 0 and not table.keys()
    with pytest.raises(ValueError):
        table.last()


def test_a_run_of_new_ids_is_what_inserting_them_one_by_one_makes() -> None:
    rng = random.Random(3)
    table, model = InodeTable(), InodeTable()
    for ino in [*range(1, 40), *rng.sample(range(40, PAGE + 100), 300)]:
        table[ino] = model[ino] = node(ino)
    for ino in rng.sample(sorted(model), 250):
        del table[ino], model[ino]  # page 0 sparse (a dict) now, page 1 the top
    first = PAGE + 200
    for count in (1, PAGE - 300, 3 * PAGE + 5):  # within the top page, up to its end, over new pages
        run = [node(first + i) for i in range(count)]
        table.add_run(first, run)
        for n in run:
            model[n.ino] = n
        first += count
        assert list(table) == list(model) and len(table) == len(model)
        assert table.pages.keys() == model.pages.keys() and table._counts == model._counts
    assert all(table[i] is model[i] for i in model) and table.last() == first - 1
    assert isinstance(table.pages[0], dict)
    gap = next(i for i in range(1, PAGE - 10) if i not in model and i + 1 not in model and i + 2 not in model)
    table.add_run(gap, [node(gap), node(gap + 1), node(gap + 2)])  # ids free in a sparse page
    assert [table[i].ino for i in range(gap, gap + 3)] == [gap, gap + 1, gap + 2]
    assert len(table) == len(model) + 3


def test_the_page_new_ids_go_to_stays_a_list_however_often_it_empties() -> None:
    """Short-lived files (a create and a remove at a time) empty the top page again and again:
    it is neither dropped nor turned into a dict (a walk of PAGE slots) each time."""
    table = InodeTable()
    table[1] = keep = node(1)
    for i in range(2, PAGE + 2):  # up into page 1
        table[i] = node(i)
        del table[i]
        assert isinstance(table.pages[i >> 12], list)
    assert isinstance(table.pages[0], dict)  # a list while it was the top, settled when page 1 began
    table[2 * PAGE] = node(2 * PAGE)
    del table[2 * PAGE]  # page 2 is the top now and stays; page 1, empty, went when page 2 began
    assert sorted(table.pages) == [0, 2] and table.get(1) is keep and table.last() == 1
    del table[1]
    assert sorted(table.pages) == [2] and len(table) == 0


def test_missing_and_odd_keys() -> None:
    table = InodeTable()
    table[1] = node(1)
    assert table.get("x") is None and "x" not in table and table.get(-1) is None  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        table[2]
    with pytest.raises(KeyError):
        del table[2]
    with pytest.raises(TypeError):
        table["x"] = node(3)  # type: ignore[index]
    assert table.keys() == {1} and {1, 2} - table.keys() == {2}


def test_a_name_used_in_many_directories_is_one_object() -> None:
    """Creates and renames share equal names (part-00000 in every job's output): one str."""
    import stat

    from nsd.namespace.tree import NAMES_SHARED, Namespace

    ns = Namespace()
    made = []
    for d in range(3):
        mk = ns.plan_mknod(1, f"job{d}", stat.S_IFDIR | 0o755, 0, 0, 1)
        ns.apply(mk)
        f = ns.plan_mknod(mk.ino, "".join(["part-", "00000"]), stat.S_IFREG | 0o644, 0, 0, 1)  # a new str each
        ns.apply(f)
        made.append(ns.inodes[f.ino])
    assert made[0].name == "part-00000"
    assert made[0].name is made[1].name is made[2].name
    assert ns.get_dir(made[0].parent.ino).children.get("part-00000") is made[0]
    renamed = ns.plan_rename(made[2].parent.ino, "part-00000", 1, "".join(["part-", "00000"]), 2)
    ns.apply(renamed)
    assert next(n for n in ns.root.children if n == "part-00000") is made[0].name
    assert len(ns.recent_names) <= NAMES_SHARED
