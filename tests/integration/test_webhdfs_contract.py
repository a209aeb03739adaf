"""WebHDFS behaviour real clients depend on, checked with plain HTTP against a real daemon.

Each test names the behaviour it pins: redirects, JSON shapes and types, error bodies, the
Hadoop FileSystem contract, identities, hostile input, durability of xattrs.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from daemon import Daemon, start

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("contract") / "data")
    yield d
    d.stop()


class Web:
    """requests against /webhdfs/v1 with user.name set; redirects are not followed unless asked."""

    def __init__(self, daemon: Daemon) -> None:
        self.base = daemon.url + "/webhdfs/v1"
        self.s = requests.Session()

    def url(self, path: str) -> str:
        return self.base + path

    def call(self, method: str, path: str, op: str, *, follow: bool = False, **params: Any) -> requests.Response:
        params = {"op": op, "user.name": ME, **params}
        return self.s.request(method, self.url(path), params=params, allow_redirects=follow)

    def create(self, path: str, data: bytes = b"", **params: Any) -> requests.Response:
        first = self.call("PUT", path, "CREATE", **params)
        assert first.status_code == 307, first.text
        return self.s.put(first.headers["Location"], data=data)

    def status(self, path: str) -> dict[str, Any]:
        r = self.call("GET", path, "GETFILESTATUS")
        assert r.status_code == 200, r.text
        return r.json()["FileStatus"]


@pytest.fixture
def web(server: Daemon) -> Web:
    return Web(server)


def remote(r: requests.Response) -> dict[str, Any]:
    body = r.json()["RemoteException"]
    assert set(body) == {"exception", "javaClassName", "message"}
    assert body["javaClassName"].endswith(body["exception"])
    return body


# ---- two-step operations -----------------------------------------------------------------------


def test_create_redirect_is_absolute_self_sufficient_and_answers_201(web: Web) -> None:
    first = web.call("PUT", "/two/f", "CREATE", overwrite="true", unknownparam="ignored")
    assert first.status_code == 307 and first.content == b""
    loc = urlsplit(first.headers["Location"])
    assert f"{loc.scheme}://{loc.netloc}" == web.base.rsplit("/webhdfs", 1)[0]
    query = dict(parse_qsl(loc.query))
    assert query["user.name"] == ME and query["data"] == "true" and query["op"] == "CREATE"
    # The Location works on its own, with a fresh connection and no added parameters.
    second = requests.put(first.headers["Location"], data=b"payload")
    assert second.status_code == 201
    assert web.status("/two/f")["length"] == 7


def test_noredirect_gives_the_location_in_json(web: Web) -> None:
    r = web.call("PUT", "/two/n", "CREATE", noredirect="true")
    assert r.status_code == 200
    location = r.json()["Location"]
    assert "noredirect" not in location and "data=true" in location
    assert requests.put(location, data=b"x").status_code == 201


def test_append_location_is_reusable(web: Web) -> None:
    web.create("/two/log", b"0")
    r = web.call("POST", "/two/log", "APPEND")
    assert r.status_code == 307
    for i in range(1, 5):
        assert requests.post(r.headers["Location"], data=str(i).encode()).status_code == 200
    assert web.call("GET", "/two/log", "OPEN", follow=True).content == b"01234"


def test_open_location_reopens_at_other_offsets_and_never_206(web: Web) -> None:
    data = bytes(range(256)) * 1000
    web.create("/two/r", data)
    first = web.call("GET", "/two/r", "OPEN", offset=10)
    assert first.status_code == 307
    loc = urlsplit(first.headers["Location"])
    for offset in (0, 100_000, len(data)):
        query = [(k, v) for k, v in parse_qsl(loc.query) if k != "offset"] + [("offset", str(offset))]
        r = requests.get(f"{loc.scheme}://{loc.netloc}{loc.path}?{urlencode(query)}", headers={"Range": "bytes=0-1"})
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == len(data) - offset
        assert r.content == data[offset:]
    ranged = web.call("GET", "/two/r", "OPEN", follow=True, offset=5, length=7)
    assert ranged.status_code == 200 and ranged.content == data[5:12]
    assert ranged.headers["Content-Length"] == "7"
    past = web.call("GET", "/two/r", "OPEN", offset=len(data) + 1)
    assert past.status_code == 403 and remote(past)["exception"] == "IOException"


def test_reader_hanging_up_mid_stream_leaves_the_server_well(server: Daemon, web: Web) -> None:
    data = os.urandom(24 << 20)
    web.create("/two/big", data)
    u = urlsplit(server.url)
    for _ in range(5):  # what Parquet readers do: read a little, hang up
        with socket.create_connection((u.hostname, u.port), timeout=30) as s:
            s.sendall(f"GET /webhdfs/v1/two/big?op=OPEN&data=true&user.name={ME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
    got = web.call("GET", "/two/big", "OPEN", follow=True, offset=(8 << 20) + 3)
    assert got.content == data[(8 << 20) + 3 :]
    assert web.status("/two/big")["length"] == len(data)


def test_chunked_upload(web: Web) -> None:
    def body() -> Iterator[bytes]:
        for i in range(50):
            yield bytes([i]) * 10_000

    first = web.call("PUT", "/two/chunked", "CREATE")
    r = requests.put(first.headers["Location"], data=body())  # a generator: Transfer-Encoding chunked
    assert r.status_code == 201
    got = web.call("GET", "/two/chunked", "OPEN", follow=True).content
    assert got == b"".join(bytes([i]) * 10_000 for i in range(50))


def _raw(daemon_url: str, request: bytes, expect_100: bool, body: bytes = b"") -> bytes:
    """Send a request by hand; with expect_100, the body follows only after the interim reply."""
    u = urlsplit(daemon_url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(request)
        reply = b""
        if expect_100:
            while b"\r\n\r\n" not in reply:
                reply += s.recv(4096)
            if reply.startswith(b"HTTP/1.1 100"):
                s.sendall(body)
        while chunk := s.recv(65536):
            reply += chunk
    return reply


def test_expect_100_continue(server: Daemon, web: Web) -> None:
    head = (
        "PUT /webhdfs/v1/two/expect?op=CREATE&user.name={u}{extra} HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    # First step: the 307 comes at once, without asking for the body.
    reply = _raw(server.url, head.format(u=ME, extra="").encode(), True)
    assert reply.startswith(b"HTTP/1.1 307")
    # Data step: 100 Continue, then the body, then 201.
    reply = _raw(server.url, head.format(u=ME, extra="&data=true").encode(), True, b"hello")
    assert reply.startswith(b"HTTP/1.1 100 Continue") and b"HTTP/1.1 201" in reply
    assert web.call("GET", "/two/expect", "OPEN", follow=True).content == b"hello"


def test_forwarded_headers_shape_the_location(web: Web) -> None:
    r = web.s.put(
        web.url("/two/fwd"),
        params={"op": "CREATE", "user.name": ME},
        headers={"X-Forwarded-Host": "gateway.example:8443", "X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert r.headers["Location"].startswith("https://gateway.example:8443/webhdfs/v1/two/fwd?")


def test_configured_base_url_wins(tmp_path: Path) -> None:
    d = start(tmp_path / "data", env={"NSD_WEBHDFS_BASE_URL": "http://nsd.internal:9870/"})
    try:
        r = requests.get(d.url + "/webhdfs/v1/?op=OPEN", headers={"X-Forwarded-Host": "ignored"})
        # "/" is not a file, so use a file: create one and look at its OPEN redirect.
        r = requests.put(d.url + "/webhdfs/v1/f?op=CREATE&user.name=" + ME, allow_redirects=False)
        assert r.headers["Location"].startswith("http://nsd.internal:9870/webhdfs/v1/f?")
    finally:
        d.stop()


# ---- JSON shapes ----------------------------------------------------------------------------------


FILE_STATUS_TYPES = {
    "accessTime": int,
    "blockSize": int,
    "childrenNum": int,
    "fileId": int,
    "group": str,
    "length": int,
    "modificationTime": int,
    "owner": str,
    "pathSuffix": str,
    "permission": str,
    "replication": int,
    "storagePolicy": int,
    "type": str,
}


def test_file_status_fields_and_types(web: Web) -> None:
    web.create("/json/f", b"abc", permission="640")
    web.call("PUT", "/json/d", "MKDIRS", permission="1777")
    web.call("PUT", "/json/l", "CREATESYMLINK", destination="/json/f")
    listed = web.call("GET", "/json", "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
    assert [e["pathSuffix"] for e in listed] == ["d", "f", "l"]
    for entry in listed:
        for field, kind in FILE_STATUS_TYPES.items():
            assert type(entry[field]) is kind, (field, entry)
    d, f, link = listed
    assert (d["type"], d["permission"], d["length"], d["childrenNum"]) == ("DIRECTORY", "1777", 0, 0)
    assert (f["type"], f["permission"], f["length"], f["owner"]) == ("FILE", "640", 3, ME)
    assert f["blockSize"] == 128 << 20 and f["replication"] == 1
    assert (link["type"], link["symlink"]) == ("SYMLINK", "/json/f")
    status = web.status("/json/f")
    assert status["pathSuffix"] == "" and status["fileId"] == f["fileId"]
    assert status["modificationTime"] > 1_600_000_000_000  # milliseconds, not seconds or ns


def test_liststatus_batch_pages_with_start_after(web: Web) -> None:
    names = [f"e{i:04d}" for i in range(1203)]
    for n in names:
        assert web.call("PUT", f"/batch/{n}", "MKDIRS").json() == {"boolean": True}
    seen: list[str] = []
    start_after = None
    remaining = []
    while True:
        params = {"startAfter": start_after} if start_after else {}
        listing = web.call("GET", "/batch", "LISTSTATUS_BATCH", **params).json()["DirectoryListing"]
        page = [e["pathSuffix"] for e in listing["partialListing"]["FileStatuses"]["FileStatus"]]
        seen += page
        remaining.append(listing["remainingEntries"])
        if not listing["remainingEntries"]:
            break
        start_after = page[-1]
    assert seen == names and remaining == [203, 0]


def test_summaries_defaults_and_wrappers(web: Web) -> None:
    web.create("/sum/a", b"x" * 10)
    web.create("/sum/s/b", b"y" * 5)
    cs = web.call("GET", "/sum", "GETCONTENTSUMMARY").json()["ContentSummary"]
    assert (cs["length"], cs["fileCount"], cs["directoryCount"], cs["quota"], cs["spaceQuota"]) == (15, 2, 2, -1, -1)
    qu = web.call("GET", "/sum", "GETQUOTAUSAGE").json()["QuotaUsage"]
    assert qu["fileAndDirectoryCount"] == 4 and qu["spaceConsumed"] == 15
    defaults = web.call("GET", "/", "GETSERVERDEFAULTS").json()["FsServerDefaults"]
    assert defaults["trashInterval"] == 0 and defaults["blockSize"] == 128 << 20
    assert defaults["bytesPerChecksum"] == 512
    assert web.call("GET", "/", "GETHOMEDIRECTORY").json() == {"Path": f"/user/{ME}"}
    assert web.call("GET", "/", "GETTRASHROOT").json() == {"Path": f"/user/{ME}/.Trash"}
    assert web.call("GET", "/", "GETDELEGATIONTOKEN").json() == {"Token": None}
    fs = web.call("GET", "/", "GETSTATUS").json()["FsStatus"]
    assert fs["capacity"] >= fs["remaining"] > 0
    # fsspec asks for the home directory on the prefix itself, without a trailing slash.
    bare = requests.get(web.base, params={"op": "GETHOMEDIRECTORY", "user.name": ME})
    assert bare.json() == {"Path": f"/user/{ME}"}
    assert web.call("GET", "/sum/a", "CHECKACCESS", fsaction="r-x").status_code == 200


def test_block_locations(web: Web, server: Daemon) -> None:
    web.create("/blk/f", b"z" * 1000)
    host = urlsplit(server.url).hostname
    locs = web.call("GET", "/blk/f", "GETFILEBLOCKLOCATIONS").json()["BlockLocations"]["BlockLocation"]
    assert [(b["offset"], b["length"], b["hosts"]) for b in locs] == [(0, 1000, [host])]
    lb = web.call("GET", "/blk/f", "GET_BLOCK_LOCATIONS").json()["LocatedBlocks"]
    assert lb["fileLength"] == 1000 and len(lb["locatedBlocks"]) == 1
    assert lb["locatedBlocks"][0]["block"]["numBytes"] == 1000
    assert lb["locatedBlocks"][0]["locations"][0]["ipAddr"] == host


def test_checksum_two_steps(web: Web) -> None:
    from hdfs_reference import reference_checksum

    data = os.urandom(300_001)
    web.create("/ck/f", data)
    first = web.call("GET", "/ck/f", "GETFILECHECKSUM")
    assert first.status_code == 307
    body = requests.get(first.headers["Location"]).json()["FileChecksum"]
    algorithm, raw = reference_checksum(data, 128 << 20)
    assert body == {"algorithm": algorithm, "bytes": raw.hex(), "length": 28}
    web.create("/ck/empty")
    empty = web.call("GET", "/ck/empty", "GETFILECHECKSUM", follow=True).json()["FileChecksum"]
    assert empty["algorithm"] == "MD5-of-0MD5-of-0CRC32"


# ---- errors -----------------------------------------------------------------------------------------


def test_error_bodies_and_statuses(web: Web) -> None:
    missing = web.call("GET", "/err/none", "GETFILESTATUS")
    assert missing.status_code == 404
    assert remote(missing) == {
        "exception": "FileNotFoundException",
        "javaClassName": "java.io.FileNotFoundException",
        "message": "File does not exist: /err/none",
    }
    assert remote(web.call("GET", "/err/none", "LISTSTATUS"))["message"] == "File /err/none does not exist."
    bad = web.call("GET", "/", "OPEN", offset="abc")
    assert bad.status_code == 400 and remote(bad)["exception"] == "IllegalArgumentException"
    unknown = web.call("GET", "/", "FROBNICATE")
    assert unknown.status_code == 400 and remote(unknown)["exception"] == "UnsupportedOperationException"
    wrong_method = web.call("GET", "/x", "MKDIRS")
    assert wrong_method.status_code == 400 and remote(wrong_method)["exception"] == "IllegalArgumentException"
    no_op = requests.get(web.base + "/")
    assert no_op.status_code == 400 and "op" in remote(no_op)["message"]
    for params in ({"overwrite": "maybe"}, {"permission": "999"}, {"blocksize": "-1"}):
        r = web.call("PUT", "/err/p", "CREATE", **params)
        assert r.status_code == 400 and remote(r)["exception"] == "IllegalArgumentException", params
    r = web.call("GET", "/", "CHECKACCESS", fsaction="rwz")
    assert r.status_code == 400


def test_booleans_any_case_and_unknown_params(web: Web) -> None:
    web.create("/bool/f", b"1")
    assert web.create("/bool/f", b"22", overwrite="True", fsspec_leak="1").status_code == 201
    assert web.create("/bool/f", b"333", overwrite="TRUE").status_code == 201
    r = web.call("PUT", "/bool/f", "CREATE", overwrite="False")
    assert r.status_code == 403 and remote(r)["exception"] == "FileAlreadyExistsException"
    assert web.status("/bool/f")["length"] == 3
    assert web.create("/bool/f", b"4444", overwrite="true", permission="600").status_code == 201
    assert (web.status("/bool/f")["length"], web.status("/bool/f")["permission"]) == (4, "600")


def test_hostile_paths(server: Daemon, web: Web) -> None:
    u = urlsplit(server.url)
    for raw in ("/webhdfs/v1/a/../etc?op=GETFILESTATUS", "/webhdfs/v1/a/%2e%2e/b?op=GETFILESTATUS",
                "/webhdfs/v1/a%00b?op=GETFILESTATUS", "/webhdfs/v1/./a?op=GETFILESTATUS"):  # fmt: skip
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", raw)
        r = conn.getresponse()
        body = json.loads(r.read())["RemoteException"]
        assert r.status == 400 and body["exception"] == "InvalidPathException", raw
        conn.close()
    long_name = "n" * 300
    r = web.call("PUT", f"/{long_name}", "MKDIRS")
    assert r.status_code == 400 and "TooLong" in remote(r)["exception"]
    r = web.call("PUT", "/hostile/" + long_name, "CREATE")
    assert r.status_code == 400 and "TooLong" in remote(r)["exception"]
    # Percent-decoding happens once: %2541 is the name "%41", not "A".
    web.create("/hostile/%2541", b"p")
    names = [e["pathSuffix"] for e in web.call("GET", "/hostile", "LISTSTATUS").json()["FileStatuses"]["FileStatus"]]
    assert names == ["%41"]
    assert (server.data_dir / "ufs" / "hostile" / "%41").read_bytes() == b"p"


# ---- Hadoop FileSystem contract ---------------------------------------------------------------------


def test_rename_contract(web: Web) -> None:
    web.create("/mv/f", b"f")
    web.create("/mv/g", b"g")
    web.call("PUT", "/mv/d/sub", "MKDIRS")

    def rename(src: str, dst: str, **kw: str) -> requests.Response:
        return web.call("PUT", src, "RENAME", destination=dst, **kw)

    assert rename("/mv/f", "/mv/g").json() == {"boolean": False}  # over a file
    assert rename("/mv/none", "/mv/x").json() == {"boolean": False}  # missing source
    assert rename("/mv/d", "/mv/d/sub/deeper").json() == {"boolean": False}  # into itself
    assert rename("/mv/f", "/mv/nodir/f").json() == {"boolean": False}  # missing parent
    assert rename("/mv/f", "/mv/g/below").json() == {"boolean": False}  # a file as parent
    assert rename("/mv/f", "/mv/f").json() == {"boolean": True}
    assert rename("/mv/f", "/mv/d").json() == {"boolean": True}  # into an existing directory
    assert web.status("/mv/d/f")["length"] == 1
    # renameoptions=OVERWRITE replaces a file and raises instead of answering false.
    assert rename("/mv/d/f", "/mv/g", renameoptions="OVERWRITE").status_code == 200
    assert web.call("GET", "/mv/g", "OPEN", follow=True).content == b"f"
    missing = rename("/mv/none", "/mv/g", renameoptions="overwrite")
    assert missing.status_code == 404 and "not found" in remote(missing)["message"]
    web.create("/mv/h", b"h")
    refused = rename("/mv/h", "/mv/g", renameoptions="NONE")
    assert refused.status_code == 403 and remote(refused)["exception"] == "FileAlreadyExistsException"
    onto_dir = rename("/mv/h", "/mv/d", renameoptions="OVERWRITE")
    assert onto_dir.status_code == 403


def test_delete_mkdirs_create_contract(web: Web) -> None:
    web.create("/c/d/f", b"x")
    not_empty = web.call("DELETE", "/c/d", "DELETE")
    assert not_empty.status_code == 403
    assert remote(not_empty)["javaClassName"] == "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"
    assert web.call("DELETE", "/c/none", "DELETE").json() == {"boolean": False}
    assert web.call("DELETE", "/", "DELETE", recursive="true").json() == {"boolean": False}
    over_file = web.call("PUT", "/c/d/f", "MKDIRS")
    assert over_file.status_code == 403 and remote(over_file)["exception"] == "FileAlreadyExistsException"
    below_file = web.call("PUT", "/c/d/f/g", "MKDIRS")
    assert below_file.status_code == 403
    assert web.call("PUT", "/c/d", "MKDIRS").json() == {"boolean": True}  # existing: fine
    over_dir = web.call("PUT", "/c/d", "CREATE")
    assert over_dir.status_code == 403 and "already exists as a directory" in remote(over_dir)["message"]
    no_parent = web.call("PUT", "/c/new/f", "CREATE", createparent="false")
    assert no_parent.status_code == 404 and remote(no_parent)["exception"] == "FileNotFoundException"
    assert web.create("/c/new/f", b"auto parent").status_code == 201
    assert web.status("/c/new")["type"] == "DIRECTORY"
    assert web.call("DELETE", "/c", "DELETE", recursive="true").json() == {"boolean": True}
    assert web.call("GET", "/c", "GETFILESTATUS").status_code == 404
    is_dir = web.call("GET", "/", "OPEN")
    assert is_dir.status_code == 404 and remote(is_dir)["message"] == "Path is not a file: /"


def test_attributes_truncate_concat(web: Web) -> None:
    web.create("/at/f", b"0123456789")
    assert web.call("PUT", "/at/f", "SETPERMISSION", permission="600").status_code == 200
    assert web.call("PUT", "/at/f", "SETTIMES", modificationtime=1_500_000_000_000).status_code == 200
    st = web.status("/at/f")
    assert st["permission"] == "600" and st["modificationTime"] == 1_500_000_000_000
    assert web.call("PUT", "/at/f", "SETOWNER", owner=str(os.getuid())).status_code == 200
    assert web.status("/at/f")["owner"] == ME
    assert web.call("PUT", "/at/f", "SETOWNER").status_code == 400
    # a user nobody knows gets an id (unknown_users = map); a name that cannot be a user is refused
    assert web.call("PUT", "/at/f", "SETOWNER", owner="no-such-user-here").status_code == 200
    assert web.status("/at/f")["owner"] == "no-such-user-here"
    assert web.call("PUT", "/at/f", "SETOWNER", owner="a:b").status_code == 403
    assert web.call("PUT", "/at/f", "SETREPLICATION", replication=3).json() == {"boolean": True}
    assert web.call("POST", "/at/f", "TRUNCATE", newlength=4).json() == {"boolean": True}
    assert web.call("GET", "/at/f", "OPEN", follow=True).content == b"0123"
    grow = web.call("POST", "/at/f", "TRUNCATE", newlength=40)
    assert grow.status_code == 400
    web.create("/at/s1", b"abc")
    web.create("/at/s2", b"def")
    assert web.call("POST", "/at/f", "CONCAT", sources="/at/s1,/at/s2").status_code == 200
    assert web.call("GET", "/at/f", "OPEN", follow=True).content == b"0123abcdef"
    assert web.call("GET", "/at/s1", "GETFILESTATUS").status_code == 404
    assert web.call("POST", "/at/f", "CONCAT", sources="/at/f").status_code == 400
    assert web.call("POST", "/at/f", "CONCAT", sources="/at/gone").status_code == 404


# ---- users -------------------------------------------------------------------------------------------


def test_identities(web: Web) -> None:
    anon = requests.get(web.base + "/", params={"op": "GETHOMEDIRECTORY"})
    assert anon.json() == {"Path": "/user/dr.who"}
    assert web.call("PUT", "/id", "MKDIRS", permission="777").status_code == 200
    stranger = web.call("PUT", "/id/x", "MKDIRS", **{"user.name": "nobody-has-this-name"})
    assert stranger.status_code == 200  # as HDFS: any user.name (unknown_users = map)
    assert (web.status("/id/x")["owner"], web.status("/id/x")["group"]) == ("nobody-has-this-name",) * 2
    numeric = web.call("PUT", "/id/n", "MKDIRS", **{"user.name": "4242"})
    assert numeric.status_code == 200
    st = web.status("/id/n")
    assert st["owner"] == (pwd.getpwuid(4242).pw_name if _has_uid(4242) else "4242")
    # The superuser (the daemon's own user) may act as another user; files are then theirs.
    r = web.call("PUT", "/id/as", "MKDIRS", doas="4243")
    assert r.status_code == 200 and web.status("/id/as")["owner"] in ("4243", _name_or_none(4243))
    refused = web.call("PUT", "/id/no", "MKDIRS", **{"user.name": "4242", "doas": ME})
    assert refused.status_code == 403 and "impersonate" in remote(refused)["message"]


def _has_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _name_or_none(uid: int) -> str | None:
    return pwd.getpwuid(uid).pw_name if _has_uid(uid) else None


# ---- xattrs -------------------------------------------------------------------------------------------


def test_xattrs(web: Web) -> None:
    web.create("/xa/f", b"")

    def set_(name: str, value: str, **kw: str) -> requests.Response:
        return web.call("PUT", "/xa/f", "SETXATTR", **{"xattr.name": name, "xattr.value": value}, **kw)

    assert set_("user.a", '"hello"', flag="CREATE").status_code == 200
    assert set_("USER.b", "0x0001ff").status_code == 200  # the namespace prefix is case-insensitive
    dup = set_("user.a", "x", flag="CREATE")
    assert dup.status_code == 403 and "already exists" in remote(dup)["message"]
    missing = set_("user.z", "x", flag="REPLACE")
    assert missing.status_code == 403 and "does not exist" in remote(missing)["message"]
    assert set_("nonamespace", "x").status_code == 400
    got = web.call("GET", "/xa/f", "GETXATTRS").json()["XAttrs"]
    assert got == [{"name": "user.a", "value": '"hello"'}, {"name": "user.b", "value": '"\x00\x01\ufffd"'}]
    hexed = web.call("GET", "/xa/f", "GETXATTRS", encoding="HEX", **{"xattr.name": "user.b"}).json()
    assert hexed == {"XAttrs": [{"name": "user.b", "value": "0x0001ff"}]}
    b64 = web.call("GET", "/xa/f", "GETXATTRS", encoding="base64", **{"xattr.name": "user.a"}).json()
    assert b64 == {"XAttrs": [{"name": "user.a", "value": "0saGVsbG8="}]}
    assert web.call("GET", "/xa/f", "GETXATTRS", **{"xattr.name": "user.none"}).status_code == 403
    names = web.call("GET", "/xa/f", "LISTXATTRS").json()["XAttrNames"]
    assert json.loads(names) == ["user.a", "user.b"]
    assert web.call("PUT", "/xa/f", "REMOVEXATTR", **{"xattr.name": "user.a"}).status_code == 200
    assert web.call("PUT", "/xa/f", "REMOVEXATTR", **{"xattr.name": "user.a"}).status_code == 403
    assert json.loads(web.call("GET", "/xa/f", "LISTXATTRS").json()["XAttrNames"]) == ["user.b"]


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_xattrs_survive_restart(tmp_path: Path, how: str) -> None:
    d = start(tmp_path / "data")
    web = Web(d)
    web.create("/f", b"")
    web.call("PUT", "/f", "SETXATTR", **{"xattr.name": "user.kept", "xattr.value": "0x00ff"})
    web.call("PUT", "/f", "SETXATTR", **{"xattr.name": "user.gone", "xattr.value": "x"})
    web.call("PUT", "/f", "REMOVEXATTR", **{"xattr.name": "user.gone"})
    if how == "sigkill":
        d.stop(signal.SIGKILL)  # recovery replays the journal
    else:
        assert d.stop() == 0  # the shutdown checkpoint holds them
    d = start(tmp_path / "data")
    try:
        got = Web(d).call("GET", "/f", "GETXATTRS", encoding="hex").json()
        assert got == {"XAttrs": [{"name": "user.kept", "value": "0x00ff"}]}
    finally:
        d.stop()
