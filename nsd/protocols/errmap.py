"""The one table from core errors to what each protocol says. Keyed by error class."""

from __future__ import annotations

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
