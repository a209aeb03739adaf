"""NFSv3 numbers from RFC 1813: program, procedures, status codes, file types, flags."""

from __future__ import annotations

from enum import IntEnum

PROGRAM = 100003
VERSION = 3

FHSIZE3 = 64
NFS3_COOKIEVERFSIZE = 8
NFS3_CREATEVERFSIZE = 8
NFS3_WRITEVERFSIZE = 8
MAX_NAME = 4096  # what the decoder accepts; NAME_MAX is enforced by the namespace (NAMETOOLONG)
MAX_PATH = 4096


class Proc(IntEnum):
    NULL = 0
    GETATTR = 1
    SETATTR = 2
    LOOKUP = 3
    ACCESS = 4
    READLINK = 5
    READ = 6
    WRITE = 7
    CREATE = 8
    MKDIR = 9
    SYMLINK = 10
    MKNOD = 11
    REMOVE = 12
    RMDIR = 13
    RENAME = 14
    LINK = 15
    READDIR = 16
    READDIRPLUS = 17
    FSSTAT = 18
    FSINFO = 19
    PATHCONF = 20
    COMMIT = 21


class Status(IntEnum):
    OK = 0
    PERM = 1
    NOENT = 2
    IO = 5
    NXIO = 6
    ACCES = 13
    EXIST = 17
    XDEV = 18
    NODEV = 19
    NOTDIR = 20
    ISDIR = 21
    INVAL = 22
    FBIG = 27
    NOSPC = 28
    ROFS = 30
    MLINK = 31
    NAMETOOLONG = 63
    NOTEMPTY = 66
    DQUOT = 69
    STALE = 70
    REMOTE = 71
    BADHANDLE = 10001
    NOT_SYNC = 10002
    BAD_COOKIE = 10003
    NOTSUPP = 10004
    TOOSMALL = 10005
    SERVERFAULT = 10006
    BADTYPE = 10007
    JUKEBOX = 10008


class Ftype(IntEnum):
    REG = 1
    DIR = 2
    BLK = 3
    CHR = 4
    LNK = 5
    SOCK = 6
    FIFO = 7


FTYPES = frozenset(int(t) for t in Ftype)


class StableHow(IntEnum):
    UNSTABLE = 0
    DATA_SYNC = 1
    FILE_SYNC = 2


STABLE_HOWS = frozenset(int(s) for s in StableHow)


class CreateMode(IntEnum):
    UNCHECKED = 0
    GUARDED = 1
    EXCLUSIVE = 2


CREATE_MODES = frozenset(int(m) for m in CreateMode)

# time_how (sattr3)
DONT_CHANGE, SET_TO_SERVER_TIME, SET_TO_CLIENT_TIME = 0, 1, 2
TIME_HOWS = frozenset({0, 1, 2})

# ACCESS bits
ACCESS_READ = 0x01
ACCESS_LOOKUP = 0x02
ACCESS_MODIFY = 0x04
ACCESS_EXTEND = 0x08
ACCESS_DELETE = 0x10
ACCESS_EXECUTE = 0x20
ACCESS_ALL = 0x3F

# FSINFO properties
FSF_LINK = 0x0001
FSF_SYMLINK = 0x0002
FSF_HOMOGENEOUS = 0x0008
FSF_CANSETTIME = 0x0010


class NfsError(Exception):
    """A failure the protocol names directly (BADHANDLE, STALE, NOT_SYNC, ...)."""

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message or status.name)
        self.status = status
