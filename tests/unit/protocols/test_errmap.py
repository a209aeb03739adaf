from __future__ import annotations

import errno

import pytest

from nsd import errors
from nsd.protocols import errmap
from nsd.protocols.errmap import http_status, nfsstat3
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


FNF, IOE, ACE = (
    "java.io.FileNotFoundException",
    "java.io.IOException",
    "org.apache.hadoop.security.AccessControlException",
)


@pytest.mark.parametrize(
    "exc, admin, webhdfs, java",
    [
        (errors.NotFound(), 404, 404, FNF),
        (errors.Stale(), 404, 404, FNF),
        (errors.Exists(), 409, 403, "org.apache.hadoop.fs.FileAlreadyExistsException"),
        (errors.NotEmpty(), 409, 403, "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
        (errors.NotDir(), 400, 403, "org.apache.hadoop.fs.ParentNotDirectoryException"),
        (errors.IsDir(), 400, 403, "org.apache.hadoop.fs.PathIsDirectoryException"),
        (errors.Invalid(), 400, 400, "java.lang.IllegalArgumentException"),
        (
            errors.NameTooLong(),
            400,
            400,
            "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException",
        ),
        (errors.Loop(), 400, 403, IOE),
        (errors.CrossDevice(), 400, 403, IOE),
        (errors.Denied(), 403, 403, ACE),
        (errors.NotPermitted(), 403, 403, ACE),
        (errors.ReadOnly(), 403, 403, IOE),
        (errors.NotSupported(), 501, 400, "java.lang.UnsupportedOperationException"),
        (errors.NoSpace(), 507, 403, "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException"),
        (errors.UfsUnavailable(), 503, 500, IOE),
        (errors.JournalFailed(), 503, 500, IOE),
        (errors.Corrupt(), 500, 500, IOE),
        (errors.JournalCorrupt("bad crc", file="x.wal", offset=8), 500, 500, IOE),  # its base class's row
        (errors.TimedOut(), 408, 408, "java.net.SocketTimeoutException"),
        (errors.DataDirLocked(), 500, 500, IOE),  # no row: the default
    ],
)
def test_http_statuses_and_java_classes(exc: errors.NsdError, admin: int, webhdfs: int, java: str) -> None:
    assert http_status(exc) == admin
    assert errmap.webhdfs(exc) == (webhdfs, java)


def test_the_chain_is_one() -> None:
    errmap.check()  # each row's errno is its class's; one errno, one nfsstat3
    for cls, row in errmap.TABLE.items():
        assert nfsstat3(cls.__new__(cls)) == row.nfs3, cls
    assert nfsstat3(OSError(errno.EDQUOT, "quota")) == Status.DQUOT
    assert nfsstat3(OSError(errno.EFBIG, "big")) == Status.FBIG
