"""Pending under-storage intents: changes begun in the UFS whose outcome is not yet journaled.

The vfs changes the UFS first and journals after. A crash in between would leave the two
disagreeing (a replaced file with its old size, a removed object still listed), so each such
change is preceded by a durable `UfsIntent` and followed, in the same batch as its outcome, by
an `IntentDone`. `Namespace.intents` holds the ones still open: at start-up they are exactly the
entries that may disagree with the UFS, and nothing else needs looking at.

They are part of the image (header key "intents", image version 3), because a background
checkpoint may be folded while one is open.
"""

from __future__ import annotations

from typing import Any, Protocol

from nsd.errors import Corrupt, Invalid
from nsd.journal.ops import IntentDone, UfsIntent


class IntentTables(Protocol):
    """What this module reads and changes of a namespace (tree.Namespace is one)."""

    intents: dict[int, tuple[str, list[Any]]]
    next_intent: int


# kind -> the types of its args
KINDS: dict[str, tuple[type, ...]] = {
    "content": (int,),
    "append": (int, int),
    "remove": (int, str),
    "rename": (int, str, int, str),
}


def _check_args(kind: Any, args: Any) -> None:
    types = KINDS.get(kind) if isinstance(kind, str) else None
    if types is None:
        raise Invalid(f"unknown intent kind {kind!r}")
    if not isinstance(args, list) or len(args) != len(types):
        raise Invalid(f"intent {kind}: expected {len(types)} args, got {args!r}")
    for value, t in zip(args, types, strict=True):
        if type(value) is not t:
            raise Invalid(f"intent {kind}: bad argument {value!r}")


def plan_intent(ns: IntentTables, kind: str, args: list[Any]) -> UfsIntent:
    _check_args(kind, args)
    return UfsIntent(ns.next_intent, kind, args)


def apply_intent(ns: IntentTables, op: UfsIntent) -> None:
    _check_args(op.kind, op.args)
    if type(op.id) is not int or op.id < 1 or op.id in ns.intents:
        raise Invalid(f"intent id {op.id!r} is not new")
    ns.intents[op.id] = (op.kind, list(op.args))
    ns.next_intent = max(ns.next_intent, op.id + 1)


def apply_done(ns: IntentTables, op: IntentDone) -> None:
    if op.id not in ns.intents:
        raise Invalid(f"no open intent {op.id!r}")
    del ns.intents[op.id]


def image_header(ns: IntentTables) -> dict[str, Any]:
    if not ns.intents:
        return {}
    return {"intents": [[i, kind, args] for i, (kind, args) in sorted(ns.intents.items())]}


def load_image_header(ns: IntentTables, header: dict[str, Any]) -> None:
    try:
        for i, kind, args in header.get("intents", []):
            _check_args(kind, args)
            if type(i) is not int or i < 1 or i in ns.intents:
                raise Invalid(f"bad intent id {i!r}")
            ns.intents[i] = (kind, list(args))
    except (Invalid, TypeError, ValueError) as e:
        raise Corrupt(f"image: bad intents: {e}") from None
    ns.next_intent = max(ns.intents, default=0) + 1


def check_intents(ns: IntentTables) -> None:
    for i, (kind, args) in ns.intents.items():
        try:
            _check_args(kind, args)
        except Invalid as e:
            raise AssertionError(f"intent {i}: {e}") from None
        if i >= ns.next_intent:
            raise AssertionError(f"intent {i} is not below next_intent {ns.next_intent}")
