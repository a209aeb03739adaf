from __future__ import annotations

import errno

import pytest

from nsd import errors
from nsd.protocols.errmap import nfsstat3
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
