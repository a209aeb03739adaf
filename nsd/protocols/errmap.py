"""The one table from core errors to what each protocol says: the chain core error -> errno ->
nfsstat3 -> HTTP status (admin API, WebHDFS) + the Java exception WebHDFS names.

Each row: the class's errno, the nfsstat3 for it (RFC 1813), the admin API status, the WebHDFS
status, and the Java exception class WebHDFS names in its RemoteException body (Hadoop clients
load that class by reflection, so it must be a real one). WebHDFS follows the NameNode's
ExceptionHandler: FileNotFoundException 404, IllegalArgument and UnsupportedOperation 400, every
other IOException (AccessControl included) 403, the rest 500. 401 is never used for permissions:
Hadoop's client turns a 401 into an auth failure unread.

NFS answers by errno (`NFS3_STATUS`, derived from the rows plus the errnos only an OSError
carries), so an OSError from the data dir maps the same way as the core error of its errno.
"""

from __future__ import annotations

import errno as _errno
from typing import NamedTuple

from nsd import errors


class Chain(NamedTuple):
    errno: int
    nfs3: int  # nfsstat3
    http: int  # admin API
    webhdfs: int
    java: str  # fully qualified Java exception class


FNF = "java.io.FileNotFoundException"
IOE = "java.io.IOException"
ACE = "org.apache.hadoop.security.AccessControlException"
TOO_LONG = "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException"

NFS3ERR_IO = 5
NFS3ERR_INVAL = 22
NFS3ERR_SERVERFAULT = 10006
NFS3ERR_JUKEBOX = 10008  # "retry later": the data is on its way (a cold UFS read)

TABLE: dict[type[errors.NsdError], Chain] = {
    errors.NotFound: Chain(_errno.ENOENT, 2, 404, 404, FNF),
    errors.Stale: Chain(_errno.ESTALE, 70, 404, 404, FNF),
    errors.Exists: Chain(_errno.EEXIST, 17, 409, 403, "org.apache.hadoop.fs.FileAlreadyExistsException"),
    errors.NotEmpty: Chain(_errno.ENOTEMPTY, 66, 409, 403, "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
    errors.NotDir: Chain(_errno.ENOTDIR, 20, 400, 403, "org.apache.hadoop.fs.ParentNotDirectoryException"),
    errors.IsDir: Chain(_errno.EISDIR, 21, 400, 403, "org.apache.hadoop.fs.PathIsDirectoryException"),
    errors.Invalid: Chain(_errno.EINVAL, NFS3ERR_INVAL, 400, 400, "java.lang.IllegalArgumentException"),
    errors.NameTooLong: Chain(_errno.ENAMETOOLONG, 63, 400, 400, TOO_LONG),
    errors.Loop: Chain(_errno.ELOOP, NFS3ERR_INVAL, 400, 403, IOE),  # NFSv3 has no ELOOP: INVAL, as others
    errors.CrossDevice: Chain(_errno.EXDEV, 18, 400, 403, IOE),
    errors.Denied: Chain(_errno.EACCES, 13, 403, 403, ACE),
    errors.NotPermitted: Chain(_errno.EPERM, 1, 403, 403, ACE),
    errors.ReadOnly: Chain(_errno.EROFS, 30, 403, 403, IOE),
    errors.NotSupported: Chain(_errno.EOPNOTSUPP, 10004, 501, 400, "java.lang.UnsupportedOperationException"),
    errors.NoSpace: Chain(_errno.ENOSPC, 28, 507, 403, "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException"),
    errors.UfsUnavailable: Chain(_errno.EIO, NFS3ERR_IO, 503, 500, IOE),
    errors.JournalFailed: Chain(_errno.EIO, NFS3ERR_IO, 503, 500, IOE),
    errors.Corrupt: Chain(_errno.EIO, NFS3ERR_IO, 500, 500, IOE),
    errors.TimedOut: Chain(_errno.ETIMEDOUT, NFS3ERR_JUKEBOX, 408, 408, "java.net.SocketTimeoutException"),
}
DEFAULT = Chain(_errno.EIO, NFS3ERR_IO, 500, 500, IOE)

# errnos no core error class carries, only an OSError (the data dir, the staging files)
OS_ONLY_NFS3: dict[int, int] = {
    _errno.ENXIO: 6,
    _errno.ENODEV: 19,
    _errno.EFBIG: 27,
    _errno.EMLINK: 31,
    _errno.EDQUOT: 69,
    _errno.EAGAIN: NFS3ERR_JUKEBOX,
}

# errno -> nfsstat3, derived from the chain: every core error carries an errno
NFS3_STATUS: dict[int, int] = {row.errno: row.nfs3 for row in (DEFAULT, *TABLE.values())} | OS_ONLY_NFS3


def lookup(exc: errors.NsdError) -> Chain:
    """The row for `exc`'s class or its nearest mapped base class."""
    for cls in type(exc).__mro__:
        row = TABLE.get(cls)
        if row is not None:
            return row
    return DEFAULT


def http_status(exc: errors.NsdError) -> int:
    return lookup(exc).http


def webhdfs(exc: errors.NsdError) -> tuple[int, str]:
    """(HTTP status, Java exception class) for a WebHDFS RemoteException."""
    row = lookup(exc)
    return row.webhdfs, row.java


def nfsstat3(exc: BaseException) -> int:
    """The nfsstat3 for a core error (by its errno) or an OSError; SERVERFAULT for anything else."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return NFS3_STATUS.get(code, NFS3ERR_IO if isinstance(exc, errors.NsdError | OSError) else NFS3ERR_SERVERFAULT)
    return NFS3ERR_SERVERFAULT


def check() -> None:
    """Assert the chain is one: each row's errno is its class's, and one errno never gives two
    nfsstat3 values."""
    seen: dict[int, int] = {}
    for cls, row in TABLE.items():
        assert cls.errno == row.errno, (cls.__name__, cls.errno, row.errno)
        assert seen.setdefault(row.errno, row.nfs3) == row.nfs3, (cls.__name__, row)
    assert not set(seen) & set(OS_ONLY_NFS3), set(seen) & set(OS_ONLY_NFS3)
