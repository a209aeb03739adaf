"""The one table from core errors to what each protocol says. Keyed by error class.

Each row: admin API status, WebHDFS status, and the Java exception class WebHDFS names in its
RemoteException body (Hadoop clients load that class by reflection, so it must be a real one).
WebHDFS follows the NameNode's ExceptionHandler: FileNotFoundException 404, IllegalArgument and
UnsupportedOperation 400, every other IOException (AccessControl included) 403, the rest 500.
401 is never used for permissions: Hadoop's client turns a 401 into an auth failure unread.
"""

from __future__ import annotations

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
    errors.Corrupt: Mapping(500, 500, IOE),
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
