from __future__ import annotations

import errno

import pytest

from nsd import errors
from nsd.protocols import errmap
from nsd.protocols.errmap import nfsstat3
from nsd.protocols.nfs3 import error_of
from nsd.protocols.nfs3.const import Status


@pytest.mark.parametrize(
    "exc, status",
    [
        (errors.NotFound(), Status.NOENT),
        (errors.Exists(), Status.EXIST),
        (errors.NotDir(), Status.NOTDIR),
        (errors.IsDir(), Status.ISDIR),
        (errors.NotEmpty(), Status.NOTEMPTY),
        (errors.Stale(), Status.STALE),
        (errors.NoSpace(), Status.NOSPC),
        (errors.ReadOnly(), Status.ROFS),
        (errors.Denied(), Status.ACCES),
        (errors.NotPermitted(), Status.PERM),
        (errors.Invalid(), Status.INVAL),
        (errors.NameTooLong(), Status.NAMETOOLONG),
        (errors.CrossDevice(), Status.XDEV),
        (errors.NotSupported(), Status.NOTSUPP),
        (errors.UfsUnavailable(), Status.IO),
        (errors.Corrupt(), Status.IO),
        (OSError(errno.EAGAIN, "slow"), Status.JUKEBOX),
        (OSError(errno.ENOSPC, "full"), Status.NOSPC),
        (RuntimeError("bug"), Status.SERVERFAULT),
    ],
)
def test_one_table(exc: BaseException, status: Status) -> None:
    assert nfsstat3(exc) == status


def test_every_core_error_gets_the_answer_of_its_errno_unless_its_class_overrides_it() -> None:
    for cls in _core_error_classes(errors.NsdError):
        exc = cls("x") if cls is not errors.JournalCorrupt else cls("x", file="f", offset=0)
        found = errmap.answer(exc)
        assert found is not None, cls
        overridden = any(c in errmap.CLASS_ANSWERS for c in cls.__mro__)
        assert overridden or found == errmap.BY_ERRNO.get(cls.errno, errmap.DEFAULT), cls
        assert errmap.http_status(exc) == found.http and errmap.webhdfs(exc) == (found.webhdfs, found.java)


def _core_error_classes(base: type[errors.NsdError]) -> list[type[errors.NsdError]]:
    """The core error tree (nsd/errors.py); subclasses elsewhere carry their own arguments."""
    out = [base]
    for sub in base.__subclasses__():
        if sub.__module__ == errors.__name__:
            out += _core_error_classes(sub)
    return out


def test_a_down_store_and_corrupt_data_share_eio_but_not_their_http_answer() -> None:
    assert nfsstat3(errors.UfsUnavailable()) == nfsstat3(errors.Corrupt()) == Status.IO
    assert errmap.http_status(errors.UfsUnavailable()) == 503
    assert errmap.http_status(errors.Corrupt()) == 500


@pytest.mark.parametrize(
    "body, name",
    [
        (b"", None),  # NULL
        (b"\0\0\0\0" + bytes(84), None),
        (bytearray(b"\0\0\0\0"), None),
        ([b"\0\0\0\0" + bytes(88), memoryview(b"data")], None),  # a READ reply in parts
        (b"\0\0\0\x02\0\0\0\0", "NFS3ERR_NOENT"),
        (bytearray(b"\0\0\0\x46"), "NFS3ERR_STALE"),
        ([b"\0\0\0\x05", b""], "NFS3ERR_IO"),
        (b"\0\0\x30\x39", "12345"),  # not a status RFC 1813 defines
    ],
)
def test_the_status_a_reply_reports(body: object, name: str | None) -> None:
    """What the NFS program tells the metrics about each reply it sends."""
    assert error_of(body) == name  # type: ignore[arg-type]
