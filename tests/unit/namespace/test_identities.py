"""Ids given to unknown user names: allocation, replay, the image, and the user map reading them."""

from __future__ import annotations

import pytest

from nsd.core.users import UserMap
from nsd.errors import Corrupt, NoSpace
from nsd.journal.ops import AllocateIds
from nsd.namespace import Namespace
from nsd.namespace.identities import plan_allocate
from nsd.namespace.image import IMAGE_VERSION_IDS


def allocate(ns: Namespace, name: str, taken: set[int] = frozenset(), low: int = 500, high: int = 503) -> int:  # type: ignore[assignment]
    for op in plan_allocate(ns, name, low, high, taken.__contains__):
        ns.apply(op)
    ns.check()
    return ns.auto_ids[name]


def test_names_get_the_next_free_id_once_skipping_ids_taken_here() -> None:
    ns = Namespace()
    assert allocate(ns, "etl") == 500
    assert allocate(ns, "etl") == 500  # once
    assert allocate(ns, "bob", taken={501, 502}) == 503
    with pytest.raises(NoSpace, match="auto_id_range 500-503 is used up"):
        allocate(ns, "carol")


def test_replaying_a_clashing_allocation_is_corrupt() -> None:
    ns = Namespace()
    ns.apply(AllocateIds([["etl", 500]]))
    for clash in (AllocateIds([["etl", 501]]), AllocateIds([["bob", 500]]), AllocateIds([["123", 600]])):
        with pytest.raises(Corrupt):
            ns.apply(clash)
    assert ns.auto_ids == {"etl": 500}


def test_the_image_carries_them_and_says_version_5() -> None:
    ns = Namespace()
    allocate(ns, "etl")
    image = list(ns.to_image())
    assert image[0]["version"] == IMAGE_VERSION_IDS
    again = Namespace.from_image(iter(image))
    assert again.auto_ids == {"etl": 500}
    assert next(iter(Namespace().to_image()))["version"] < IMAGE_VERSION_IDS  # none given: as before


def test_the_user_map_names_given_ids_both_ways() -> None:
    ns = Namespace()
    users = UserMap(system=False)
    users.auto_ids = ns.auto_ids
    assert users.user("etl") is None
    allocate(ns, "etl")
    found = users.user("etl")
    assert found is not None and (found.caller.uid, found.caller.gid) == (500, 500)
    assert (users.user_name(500), users.group_name(500), users.gid_of("etl")) == ("etl", "etl", 500)
    assert users.entries() == [{"name": "etl", "uid": 500, "gid": 500, "groups": ["etl"], "source": "auto"}]
