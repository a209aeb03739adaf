"""The one table from core errors to what each protocol says: HTTP by error class, NFSv3 by errno.

Each row: admin API status, WebHDFS status, and the Java exception class WebHDFS names in its
RemoteException body (Hadoop clients load that class by reflection, so it must be a real one).
WebHDFS follows the NameNode's ExceptionHandler: FileNotFoundException 404, IllegalArgument and
UnsupportedOperation 400, every other IOException (AccessControl included) 403, the rest 500.
401 is never used for permissions: Hadoop's client turns a 401 into an auth failure unread.
"""

from __future__ import annotations

import errno as _errno
from typing import NamedTuple

from nsd import errors


class Mapping(NamedTuple):
    http: int  # admin API
    webhdfs: int
    java: str  # fully qualified Java exception class


FNF = "java.io.FileNotFoundException"
IOE = "java.io.IOException"

TABLE: dict[type[errors.NsdError], Mapping] = {
    errors.NotFound: Mapping(404, 404, FNF),
    errors.Stale: Mapping(404, 404, FNF),
    errors.Exists: Mapping(409, 403, "org.apache.hadoop.fs.FileAlreadyExistsException"),
    errors.NotEmpty: Mapping(409, 403, "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
    errors.NotDir: Mapping(400, 403, "org.apache.hadoop.fs.ParentNotDirectoryException"),
    errors.IsDir: Mapping(400, 403, "org.apache.hadoop.fs.PathIsDirectoryException"),
    errors.Invalid: Mapping(400, 400, "java.lang.IllegalArgumentException"),
    errors.NameTooLong: Mapping(
        400, 400, "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException"
    ),
    errors.Loop: Mapping(400, 403, IOE),
    errors.CrossDevice: Mapping(400, 403, IOE),
    errors.Denied: Mapping(403, 403, "org.apache.hadoop.security.AccessControlException"),
    errors.NotPermitted: Mapping(403, 403, "org.apache.hadoop.security.AccessControlException"),
    errors.ReadOnly: Mapping(403, 403, IOE),
    errors.NotSupported: Mapping(501, 400, "java.lang.UnsupportedOperationException"),
    errors.NoSpace: Mapping(507, 403, "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException"),
    errors.UfsUnavailable: Mapping(503, 500, IOE),
    errors.JournalFailed: Mapping(503, 500, IOE),
    errors.Unavailable: Mapping(503, 503, "org.apache.hadoop.ipc.RetriableException"),
    errors.NotLeader: Mapping(421, 421, "org.apache.hadoop.ipc.StandbyException"),
    errors.Corrupt: Mapping(500, 500, IOE),
    errors.TimedOut: Mapping(408, 408, "java.net.SocketTimeoutException"),
}
DEFAULT = Mapping(500, 500, IOE)


def lookup(exc: errors.NsdError) -> Mapping:
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


# errno -> nfsstat3 (RFC 1813). Every core error carries an errno, so NFS needs only this table.
NFS3_STATUS: dict[int, int] = {
    _errno.EPERM: 1,  # NFS3ERR_PERM
    _errno.ENOENT: 2,  # NFS3ERR_NOENT
    _errno.EIO: 5,  # NFS3ERR_IO
    _errno.ENXIO: 6,  # NFS3ERR_NXIO
    _errno.EACCES: 13,  # NFS3ERR_ACCES
    _errno.EEXIST: 17,  # NFS3ERR_EXIST
    _errno.EXDEV: 18,  # NFS3ERR_XDEV
    _errno.ENODEV: 19,  # NFS3ERR_NODEV
    _errno.ENOTDIR: 20,  # NFS3ERR_NOTDIR
    _errno.EISDIR: 21,  # NFS3ERR_ISDIR
    _errno.EINVAL: 22,  # NFS3ERR_INVAL
    _errno.ELOOP: 22,  # NFSv3 has no ELOOP: INVAL, as other servers answer
    _errno.EFBIG: 27,  # NFS3ERR_FBIG
    _errno.ENOSPC: 28,  # NFS3ERR_NOSPC
    _errno.EROFS: 30,  # NFS3ERR_ROFS
    _errno.EMLINK: 31,  # NFS3ERR_MLINK
    _errno.ENAMETOOLONG: 63,  # NFS3ERR_NAMETOOLONG
    _errno.ENOTEMPTY: 66,  # NFS3ERR_NOTEMPTY
    _errno.EDQUOT: 69,  # NFS3ERR_DQUOT
    _errno.ESTALE: 70,  # NFS3ERR_STALE
    _errno.EOPNOTSUPP: 10004,  # NFS3ERR_NOTSUPP
    _errno.EAGAIN: 10008,  # NFS3ERR_JUKEBOX: the data is on its way (cold UFS read); retry later
    _errno.ETIMEDOUT: 10008,  # NFS3ERR_JUKEBOX
}
NFS3ERR_SERVERFAULT = 10006


def nfsstat3(exc: BaseException) -> int:
    """The nfsstat3 for a core error (by its errno) or an OSError; SERVERFAULT for anything else."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return NFS3_STATUS.get(code, 5 if isinstance(exc, errors.NsdError | OSError) else NFS3ERR_SERVERFAULT)
    return NFS3ERR_SERVERFAULT
