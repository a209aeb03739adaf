"""Names mapped to auto_id_range: plan, apply, check and the image (nsd.namespace.idmap)."""

from __future__ import annotations

import pytest

from nsd.errors import Corrupt, Denied, Invalid
from nsd.journal.ops import MapUser
from nsd.namespace import Namespace
from nsd.namespace.idmap import check_name, parse_range, plan_map_user
from nsd.namespace.image import IMAGE_VERSION, IMAGE_VERSION_USERS


def nobody_has(_: int) -> bool:
    return False


def mapped(ns: Namespace, name: str, id_range: tuple[int, int], taken=nobody_has) -> int:
    op = plan_map_user(ns, name, id_range, taken)
    ns.apply(op)
    ns.check()
    return op.id


def test_ids_are_given_in_order_and_never_twice() -> None:
    ns = Namespace()
    assert mapped(ns, "etl", (100, 200)) == 100
    assert mapped(ns, "bob", (100, 200)) == 101
    assert mapped(ns, "carol", (100, 200), taken=lambda i: i in (102, 103)) == 104
    assert ns.auto_ids == {"etl": 100, "bob": 101, "carol": 104}
    assert ns.auto_names == {100: "etl", 101: "bob", 104: "carol"}
    with pytest.raises(Invalid, match="already has id 100"):
        plan_map_user(ns, "etl", (100, 200), nobody_has)
    with pytest.raises(Corrupt):
        ns.apply(MapUser("dave", 101))  # an id given already
    with pytest.raises(Corrupt):
        ns.apply(MapUser("etl", 150))  # a name mapped already
    assert ns.auto_ids == {"etl": 100, "bob": 101, "carol": 104}


def test_a_used_up_range_refuses_with_a_message_naming_the_setting() -> None:
    ns = Namespace()
    assert mapped(ns, "a", (7, 8)) == 7
    with pytest.raises(Denied) as e:
        plan_map_user(ns, "b", (7, 8), taken=lambda i: i == 8)
    assert e.value.message == ("cannot map user b: auto_id_range 7-8 is used up; widen it or add the user to `users`")
    assert ns.auto_ids == {"a": 7}


@pytest.mark.parametrize("bad", ["", "1234", "a b", "etl:etl", "x;y", "a,b", "a=b", "a/b", "tab\there", "x" * 257])
def test_names_that_cannot_be_users_are_refused(bad: str) -> None:
    with pytest.raises(Invalid):
        check_name(bad)
    with pytest.raises(Invalid):
        plan_map_user(Namespace(), bad, (1, 10), nobody_has)


def test_names_hadoop_uses_are_fine() -> None:
    for good in ("etl", "svc-spark_2", "etl@EXAMPLE.COM", "$machine", "étienne", "x" * 256):
        check_name(good)


def test_range_setting() -> None:
    assert parse_range("200000-299999") == (200000, 299999)
    assert parse_range(" 5 - 5 ") == (5, 5)
    for bad in ("", "200000", "9-1", "0-10", "a-b", "1-4294967296"):
        with pytest.raises(Invalid, match="auto_id_range"):
            parse_range(bad)


def test_the_image_carries_the_map_and_only_version_5_may() -> None:
    ns = Namespace()
    mapped(ns, "etl", (100, 200))
    mapped(ns, "bob", (100, 200))
    chunks = list(ns.to_image())
    assert chunks[0]["version"] == IMAGE_VERSION_USERS
    assert chunks[0]["users"] == [["etl", 100], ["bob", 101]]
    loaded = Namespace.from_image(chunks)
    loaded.check()
    assert (loaded.auto_ids, loaded.auto_names) == (ns.auto_ids, ns.auto_names)
    assert next(Namespace().to_image())["version"] == IMAGE_VERSION  # no map, no new version
    with pytest.raises(Corrupt, match="users in a version 4 image"):
        Namespace.from_image([{**chunks[0], "version": 4}, *chunks[1:]])
    with pytest.raises(Corrupt, match="bad user map"):
        Namespace.from_image([{**chunks[0], "users": [["etl", 100], ["bob", 100]]}, *chunks[1:]])
