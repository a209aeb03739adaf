"""WebHDFS JSON bodies, field for field as Hadoop's JsonUtil writes them. Pure functions.

Hadoop's Java client casts strictly (JsonUtilClient): permission/type/owner/group are strings,
every number a JSON number, times in milliseconds. Names and nesting follow WebHDFS.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from nsd import errors
from nsd.core.users import UserMap
from nsd.namespace import DirInode, Inode
from nsd.protocols.webhdfs.checksum import BYTES_PER_CRC, FileChecksum

REPLICATION = 1  # one copy as far as HDFS clients can tell: the UFS keeps its own redundancy
STORAGE_POLICY_UNSPECIFIED = 0
HOT_POLICY = 7
CRC32C_TYPE_ID = 2  # DataChecksum.Type.CRC32C.id
# An empty Hadoop Token (identifier, password, kind, service all empty), URL-safe base64.
EMPTY_TOKEN = "AAAAAA"


def ms(ns: int) -> int:
    return ns // 1_000_000


def permission(mode: int) -> str:
    """Octal string without a leading 0: "644", "1777" (sticky bit as Hadoop shows it)."""
    return format(mode & 0o1777, "o")


def kind(node: Inode) -> str:
    if node.is_dir:
        return "DIRECTORY"
    if node.is_symlink:
        return "SYMLINK"
    return "FILE"  # FIFOs and sockets too: Hadoop has no type for them (their length is 0)


def file_status(node: Inode, suffix: str, block_size: int, names: UserMap) -> dict[str, Any]:
    """One FileStatus object (without its {"FileStatus": ...} wrapper); owner and group named
    through the user map NFS shares, so a uid shows as the same name at both doors."""
    is_dir = isinstance(node, DirInode)
    out: dict[str, Any] = {
        "accessTime": ms(node.atime),
        "blockSize": 0 if is_dir else block_size,
        "childrenNum": len(node.children) if isinstance(node, DirInode) else 0,
        "fileId": node.ino,
        "group": names.group_name(node.gid),
        "length": node.size if node.is_file else 0,
        "modificationTime": ms(node.mtime),
        "owner": names.user_name(node.uid),
        "pathSuffix": suffix,
        "permission": permission(node.mode),
        "replication": 0 if is_dir else REPLICATION,
        "storagePolicy": STORAGE_POLICY_UNSPECIFIED,
        "type": kind(node),
    }
    target = getattr(node, "target", None)
    if target is not None:
        out["symlink"] = target
    return out


def file_statuses(entries: list[tuple[str, Inode]], block_size: int, names: UserMap) -> dict[str, Any]:
    return {"FileStatus": [file_status(node, name, block_size, names) for name, node in entries]}


def content_summary(length: int, files: int, dirs: int) -> dict[str, Any]:
    return {
        "ContentSummary": {
            "directoryCount": dirs,
            "ecPolicy": "",
            "fileCount": files,
            "length": length,
            "quota": -1,
            "spaceConsumed": length * REPLICATION,
            "spaceQuota": -1,
            "typeQuota": {},
        }
    }


def quota_usage(length: int, files: int, dirs: int) -> dict[str, Any]:
    return {
        "QuotaUsage": {
            "fileAndDirectoryCount": files + dirs,
            "quota": -1,
            "spaceConsumed": length * REPLICATION,
            "spaceQuota": -1,
            "typeQuota": {},
        }
    }


def file_checksum(checksum: FileChecksum) -> dict[str, Any]:
    return {
        "FileChecksum": {
            "algorithm": checksum.algorithm,
            "bytes": checksum.bytes.hex(),
            "length": checksum.length,
        }
    }


def server_defaults(block_size: int) -> dict[str, Any]:
    # trashInterval 0: `hadoop fs -rm` deletes at once instead of moving into .Trash.
    return {
        "FsServerDefaults": {
            "blockSize": block_size,
            "bytesPerChecksum": BYTES_PER_CRC,
            "writePacketSize": 65536,
            "replication": REPLICATION,
            "fileBufferSize": 4096,
            "encryptDataTransfer": False,
            "trashInterval": 0,
            "checksumType": CRC32C_TYPE_ID,
            "keyProviderUri": "",
            "defaultStoragePolicyId": HOT_POLICY,
        }
    }


def blocks(size: int, block_size: int, offset: int, length: int) -> list[tuple[int, int]]:
    """(offset, length) of the advertised blocks overlapping [offset, offset + length)."""
    out: list[tuple[int, int]] = []
    if offset >= size or length <= 0:
        return out
    first = max(0, offset) // block_size * block_size
    end = min(size, offset + length)
    pos = first
    while pos < end:
        out.append((pos, min(block_size, size - pos)))
        pos += block_size
    return out


def block_locations(spans: list[tuple[int, int]], hosts: list[tuple[str, int]]) -> dict[str, Any]:
    """GETFILEBLOCKLOCATIONS: each block at the (host, port) serving it (this daemon, or in a
    cluster the node that holds it)."""
    return {
        "BlockLocations": {
            "BlockLocation": [
                {
                    "cachedHosts": [],
                    "corrupt": False,
                    "hosts": [host],
                    "length": length,
                    "names": [f"{host}:{port}"],
                    "offset": offset,
                    "storageIds": ["nsd"],
                    "storageTypes": ["DISK"],
                    "topologyPaths": [f"/default-rack/{host}:{port}"],
                }
                for (offset, length), (host, port) in zip(spans, hosts, strict=True)
            ]
        }
    }


def _datanode(host: str, port: int) -> dict[str, Any]:
    return {
        "adminState": "NORMAL",
        "blockPoolUsed": 0,
        "cacheCapacity": 0,
        "cacheUsed": 0,
        "capacity": 0,
        "dfsUsed": 0,
        "hostName": host,
        "infoPort": port,
        "infoSecurePort": 0,
        "ipAddr": host,
        "ipcPort": port,
        "lastUpdate": 0,
        "lastUpdateMonotonic": 0,
        "name": f"{host}:{port}",
        "networkLocation": "/default-rack",
        "remaining": 0,
        "storageID": "nsd",
        "xceiverCount": 0,
        "xferPort": port,
    }


def located_blocks(
    ino: int, size: int, spans: list[tuple[int, int]], block_size: int, hosts: list[tuple[str, int]]
) -> dict[str, Any]:
    """GET_BLOCK_LOCATIONS: Hadoop's LocatedBlocks, block ids made from the inode id, each block
    at the (host, port) serving it."""
    last = (size - 1) // block_size * block_size if size else 0
    where = {off: hosts[i] for i, (off, _) in enumerate(spans)}
    here = hosts[0] if hosts else ("localhost", 0)

    def located(index: int, offset: int, length: int) -> dict[str, Any]:
        dn = _datanode(*where.get(offset, here))
        return {
            "block": {"blockId": ino * 65536 + index, "blockPoolId": "nsd", "generationStamp": 1, "numBytes": length},
            "blockToken": {"urlString": EMPTY_TOKEN},
            "cachedLocations": [],
            "isCorrupt": False,
            "locations": [dn],
            "startOffset": offset,
            "storageTypes": ["DISK"],
        }

    return {
        "LocatedBlocks": {
            "fileLength": size,
            "isLastBlockComplete": True,
            "isUnderConstruction": False,
            "lastLocatedBlock": located(last // block_size, last, size - last) if size else None,
            "locatedBlocks": [located(off // block_size, off, ln) for off, ln in spans],
        }
    }


# ---- xattr values: Hadoop's XAttrCodec ------------------------------------------------------


def encode_xattr(value: bytes, encoding: str | None) -> str:
    """TEXT as a quoted string, HEX as 0x..., BASE64 as 0s... (XAttrCodec.encodeValue)."""
    enc = (encoding or "text").lower()
    if enc == "hex":
        return "0x" + value.hex()
    if enc == "base64":
        return "0s" + base64.b64encode(value).decode()
    if enc == "text":
        return '"' + value.decode("utf-8", "replace") + '"'
    raise errors.Invalid(f'Invalid value for webhdfs parameter "encoding": {encoding}')


def decode_xattr(text: str | None) -> bytes:
    """A SETXATTR value: 0x... hex, 0s... base64, "quoted" or bare text (XAttrCodec.decodeValue)."""
    if text is None:
        return b""
    try:
        if len(text) >= 2 and text[:2].lower() == "0x":
            return bytes.fromhex(text[2:])
        if len(text) >= 2 and text[:2].lower() == "0s":
            return base64.b64decode(text[2:], validate=True)
    except (ValueError, binascii.Error):
        raise errors.Invalid(f"Invalid xattr value: {text}") from None
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.encode()


def xattr_names(names: list[str]) -> dict[str, Any]:
    # Hadoop writes the list as a JSON string holding a JSON array.
    return {"XAttrNames": json.dumps(names, separators=(",", ":"))}


def remote_exception(java_class: str, message: str) -> dict[str, Any]:
    return {
        "RemoteException": {
            "exception": java_class.rsplit(".", 1)[-1].rsplit("$", 1)[-1],
            "javaClassName": java_class,
            "message": message,
        }
    }
