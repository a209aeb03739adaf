"""The one table from core errors to what each protocol says: HTTP by error class, NFSv3 by errno."""

from __future__ import annotations

import errno as _errno

from nsd import errors

# error class -> HTTP status for the admin API
HTTP_STATUS: dict[type[errors.NsdError], int] = {
    errors.NotFound: 404,
    errors.Stale: 404,
    errors.Exists: 409,
    errors.NotEmpty: 409,
    errors.NotDir: 400,
    errors.IsDir: 400,
    errors.Invalid: 400,
    errors.NameTooLong: 400,
    errors.Loop: 400,
    errors.CrossDevice: 400,
    errors.Denied: 403,
    errors.NotPermitted: 403,
    errors.ReadOnly: 403,
    errors.NotSupported: 501,
    errors.NoSpace: 507,
    errors.UfsUnavailable: 503,
    errors.JournalFailed: 503,
    errors.Corrupt: 500,
}


def http_status(exc: errors.NsdError) -> int:
    for cls in type(exc).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500


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
