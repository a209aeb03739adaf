"""Hadoop's rules for xattr names and SETXATTR flags (XAttrHelper, XAttrSetFlag)."""

from __future__ import annotations

from nsd.protocols.webhdfs.params import BadParam

NAMESPACES = ("user", "trusted", "security", "system", "raw")


def normalize_name(name: str) -> str:
    """`ns.rest` with the namespace lower-cased (Hadoop stores it so); BadParam otherwise."""
    prefix, dot, rest = name.partition(".")
    if not dot or not rest or prefix.lower() not in NAMESPACES:
        raise BadParam(
            f"An XAttr name must be prefixed with user/trusted/security/system/raw, followed by a '.': {name}"
        )
    return f"{prefix.lower()}.{rest}"


def parse_flags(raw: str | None) -> tuple[bool, bool]:
    """(create allowed, replace allowed) from "CREATE", "REPLACE" or both, comma-separated.

    Absent means both, so a plain SETXATTR sets whether or not the name exists.
    """
    if not raw:
        return True, True
    flags = {f.strip().upper() for f in raw.split(",") if f.strip()}
    if not flags or not flags <= {"CREATE", "REPLACE"}:
        raise BadParam(f'Invalid value for webhdfs parameter "flag": {raw}')
    return "CREATE" in flags, "REPLACE" in flags
