"""Under-storage adapters behind one async interface (`nsd.ufs.base.Ufs`)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlparse

from nsd.errors import Invalid
from nsd.ufs.base import Ufs, UfsStatus


def open_ufs(uri: str, options: Mapping[str, str] | None = None) -> Ufs:
    """An adapter for `uri` with its mount options. Only local directories (file:///abs/path) so far."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        from nsd.ufs.local import LocalUfs

        return LocalUfs(uri)
    raise Invalid(f"unsupported under-storage URI {uri!r} (supported: file:///abs/path)")


__all__ = ["Ufs", "UfsStatus", "open_ufs"]
