"""The one chain from a core error to what each protocol says: error -> errno -> answers.

Every core error carries an errno (nsd/errors.py), and so does an OSError from an under-storage,
so one table keyed by errno gives each door its answer: the nfsstat3 (RFC 1813), the admin API's
HTTP status, and WebHDFS's status with the Java exception class its RemoteException body names
(Hadoop clients load that class by reflection, so it must be a real one). A class whose answer
is not its errno's (errno alone cannot tell an under-storage that is down from corrupt data, both
EIO) overrides it in CLASS_ANSWERS, looked up first along the class's bases.

WebHDFS follows the NameNode's ExceptionHandler: FileNotFoundException 404, IllegalArgument and
UnsupportedOperation 400, every other IOException (AccessControl included) 403, the rest 500.
401 is never used for permissions: Hadoop's client turns a 401 into an auth failure unread.
"""

from __future__ import annotations

import errno as e
from typing import NamedTuple

from nsd import errors


class Answer(NamedTuple):
    nfs3: int  # nfsstat3
    http: int  # admin API
    webhdfs: int
    java: str  # fully qualified Java exception class


FNF = "java.io.FileNotFoundException"
IOE = "java.io.IOException"
ACE = "org.apache.hadoop.security.AccessControlException"
NFS3ERR_IO, NFS3ERR_INVAL, NFS3ERR_JUKEBOX, NFS3ERR_SERVERFAULT = 5, 22, 10008, 10006

BY_ERRNO: dict[int, Answer] = {
    e.EPERM: Answer(1, 403, 403, ACE),
    e.ENOENT: Answer(2, 404, 404, FNF),
    e.EIO: Answer(NFS3ERR_IO, 500, 500, IOE),
    e.ENXIO: Answer(6, 404, 404, FNF),
    e.EACCES: Answer(13, 403, 403, ACE),
    e.EEXIST: Answer(17, 409, 403, "org.apache.hadoop.fs.FileAlreadyExistsException"),
    e.EXDEV: Answer(18, 400, 403, IOE),
    e.ENODEV: Answer(19, 404, 404, FNF),
    e.ENOTDIR: Answer(20, 400, 403, "org.apache.hadoop.fs.ParentNotDirectoryException"),
    e.EISDIR: Answer(21, 400, 403, "org.apache.hadoop.fs.PathIsDirectoryException"),
    e.EINVAL: Answer(NFS3ERR_INVAL, 400, 400, "java.lang.IllegalArgumentException"),
    e.ELOOP: Answer(NFS3ERR_INVAL, 400, 403, IOE),  # NFSv3 has no ELOOP: INVAL, as other servers answer
    e.EFBIG: Answer(27, 400, 403, IOE),
    e.ENOSPC: Answer(28, 507, 403, "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException"),
    e.EROFS: Answer(30, 403, 403, IOE),
    e.EMLINK: Answer(31, 400, 403, IOE),
    e.ENAMETOOLONG: Answer(
        63, 400, 400, "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException"
    ),
    e.ENOTEMPTY: Answer(66, 409, 403, "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
    e.EDQUOT: Answer(69, 507, 403, "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException"),
    e.ESTALE: Answer(70, 404, 404, FNF),
    e.EOPNOTSUPP: Answer(10004, 501, 400, "java.lang.UnsupportedOperationException"),
    e.EAGAIN: Answer(NFS3ERR_JUKEBOX, 503, 500, IOE),  # the data is on its way (cold UFS read)
    e.ETIMEDOUT: Answer(NFS3ERR_JUKEBOX, 408, 408, "java.net.SocketTimeoutException"),
}
CLASS_ANSWERS: dict[type[errors.NsdError], Answer] = {
    errors.UfsUnavailable: Answer(NFS3ERR_IO, 503, 500, IOE),  # transient: retry later
    errors.JournalFailed: Answer(NFS3ERR_IO, 503, 500, IOE),
    # cluster: no leader or etcd unreachable (retry); a change only the leader can make
    errors.Unavailable: Answer(NFS3ERR_JUKEBOX, 503, 503, "org.apache.hadoop.ipc.RetriableException"),
    errors.NotLeader: Answer(30, 421, 421, "org.apache.hadoop.ipc.StandbyException"),
}
DEFAULT = BY_ERRNO[e.EIO]


def answer(exc: BaseException) -> Answer | None:
    """The answer for a core error or an OSError (None for anything else: a bug)."""
    for cls in type(exc).__mro__:
        found = CLASS_ANSWERS.get(cls)
        if found is not None:
            return found
    if not isinstance(exc, errors.NsdError | OSError) or not isinstance(exc.errno, int):
        return None
    return BY_ERRNO.get(exc.errno, DEFAULT)


def http_status(exc: errors.NsdError) -> int:
    """The admin API's status."""
    return (answer(exc) or DEFAULT).http


def webhdfs(exc: errors.NsdError) -> tuple[int, str]:
    """(HTTP status, Java exception class) for a WebHDFS RemoteException."""
    found = answer(exc) or DEFAULT
    return found.webhdfs, found.java


def nfsstat3(exc: BaseException) -> int:
    """The nfsstat3 of a core error or an OSError; SERVERFAULT for anything else."""
    found = answer(exc)
    return NFS3ERR_SERVERFAULT if found is None else found.nfs3
