"""Debian's libnfs-utils (nfs-cp, nfs-cat, nfs-ls) against a real nsd, with no portmapper.

libnfs mounts the directory part of a URL and names the file inside it; for a file directly
under the root the export is "" (which libnfs refuses), so URLs here always have a directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from daemon import Daemon, listing_helpers, nsd, start
from rpcclient import RpcClient, dirop, lookup_path, write_status

MiB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("nfs") / "data")
    yield d
    assert d.stop() == 0


def run(*cmd: str, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    out = subprocess.run(cmd, stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE, timeout=600)
    assert out.returncode == 0, f"{cmd} failed: {out.stderr.decode(errors='replace')}"
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


@pytest.mark.parametrize(
    "size",
    [0, 1, MiB + 1, pytest.param(100 * MiB, marks=pytest.mark.slow)],
    ids=["0B", "1B", "1MiB+1", "100MiB"],
)
def test_copy_in_and_out(server: Daemon, tmp_path: Path, size: int) -> None:
    src = random_file(tmp_path / "src", size)
    # The directory must exist first: nfs-cp creates only the file.
    nsd("mkdir", "-p", "/copies", daemon=server)
    run("nfs-cp", str(src), server.nfs_url(f"/copies/f{size}"))
    back = tmp_path / "back"
    run("nfs-cp", server.nfs_url(f"/copies/f{size}"), str(back))
    assert back.stat().st_size == size
    assert sha256(back) == sha256(src)
    with (tmp_path / "cat").open("wb") as out:
        run("nfs-cat", server.nfs_url(f"/copies/f{size}"), stdout=out.fileno())
    assert sha256(tmp_path / "cat") == sha256(src)
    # The namespace saw the same size through the other door.
    stat = nsd("stat", "--json", f"/copies/f{size}", daemon=server)
    assert stat.returncode == 0 and f'"size": {size}' in stat.stdout.decode()


def test_nfs_cp_refuses_to_overwrite(server: Daemon, tmp_path: Path) -> None:
    src = random_file(tmp_path / "src", 10)
    nsd("mkdir", "-p", "/guarded", daemon=server)
    run("nfs-cp", str(src), server.nfs_url("/guarded/f"))
    again = subprocess.run(["nfs-cp", str(src), server.nfs_url("/guarded/f")], capture_output=True, timeout=60)
    assert again.returncode != 0  # created GUARDED: EXIST


def test_file_written_over_nfs_reads_back_through_the_cli(server: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_bytes(b"written over NFS\n" * 1000)
    nsd("mkdir", "-p", "/door", daemon=server)
    run("nfs-cp", str(src), server.nfs_url("/door/hello.txt"))
    out = nsd("cat", "/door/hello.txt", daemon=server)
    assert out.returncode == 0, out.stderr
    assert out.stdout == src.read_bytes()


def test_list_5000_entries(server: Daemon) -> None:
    nsd("mkdir", "-p", "/many", daemon=server)
    with RpcClient(server.nfs_port) as c:
        root = c.mount(b"/many")
        names = [f"entry-{i:05d}" for i in range(5000)]
        # Pipelined in batches: replies are read before the next batch so neither side stalls.
        for start_at in range(0, len(names), 250):
            batch = names[start_at : start_at + 250]
            for i, name in enumerate(batch):
                c.send_raw(_create_call(c, start_at + i, root, name.encode()))
            for _ in batch:
                c.recv_record()
    listing = run("nfs-ls", server.nfs_url("/many")).stdout.decode().split("\n")
    seen = sorted(line.split()[-1] for line in listing if line.strip())
    assert seen == names


def _ls(server: Daemon, path: str) -> dict[str, tuple[str, int]]:
    """nfs-ls of `path`: name -> (mode string, size)."""
    listing = run("nfs-ls", server.nfs_url(path)).stdout.decode()
    entries = {}
    for line in listing.splitlines():
        mode, _nlink, _uid, _gid, size, name = line.split(maxsplit=5)
        entries[name] = (mode, int(size))
    return entries


def test_listing_a_directory_only_the_under_storage_has(server: Daemon) -> None:
    # The first listing discovers the directory; names of every length (multi-byte ones too) and
    # sizes come through READDIRPLUS pages; a change made since shows at the next listing.
    ufs_dir = server.data_dir / "ufs" / "listed-from-ufs"
    ufs_dir.mkdir()
    names = [f"part-{i:05d}.parquet" for i in range(1500)] + ["a", "é" * 127, "x" * 255]
    for i, name in enumerate(names):
        (ufs_dir / name).write_bytes(b"x" * (i % 11))
    want = {name: ("-rw-r--r--", i % 11) for i, name in enumerate(names)}
    assert _ls(server, "/listed-from-ufs") == want
    assert _ls(server, "/listed-from-ufs") == want  # listed again, from what nsd knows
    nsd("chmod", "600", "/listed-from-ufs/a", daemon=server)
    nsd("truncate", "-s", "7", f"/listed-from-ufs/{'é' * 127}", daemon=server)
    nsd("mv", "/listed-from-ufs/part-00000.parquet", "/listed-from-ufs/moved", daemon=server)
    want["a"] = ("-rw-------", want["a"][1])
    want["é" * 127] = ("-rw-r--r--", 7)
    want["moved"] = want.pop("part-00000.parquet")
    assert _ls(server, "/listed-from-ufs") == want


def test_a_directory_listed_again_shows_every_change_made_since(server: Daemon, tmp_path: Path) -> None:
    # nfs-ls reads READDIRPLUS pages; those after the first come from the page cache while nothing
    # changed. Each kind of change made since, journaled or not, shows at the next listing.
    ufs_dir = server.data_dir / "ufs" / "relisted"
    ufs_dir.mkdir()
    names = [f"part-{i:05d}.parquet" for i in range(600)]
    for name in names:
        (ufs_dir / name).write_bytes(b"")
    want = {name: ("-rw-r--r--", 0) for name in names}
    assert _ls(server, "/relisted") == want
    assert _ls(server, "/relisted") == want  # again: pages from the cache
    written = names[::20]  # on many pages, so on cached ones too
    with RpcClient(server.nfs_port) as c:
        for name in written:  # UNSTABLE: the new size is not journaled until a COMMIT
            assert write_status(c, lookup_path(c, f"/relisted/{name}"), 0, b"12345", stable=0) == 0
        want.update({name: ("-rw-r--r--", 5) for name in written})
        assert _ls(server, "/relisted") == want
    run("nfs-cp", str(random_file(tmp_path / "new", 3)), server.nfs_url("/relisted/new"))
    want["new"] = ("-rw-rw----", 3)  # nfs-cp creates its files 0660
    assert _ls(server, "/relisted") == want
    nsd("chmod", "600", *(f"/relisted/{name}" for name in names[1::50]), daemon=server)
    want.update({name: ("-rw-------", 0) for name in names[1::50]})
    nsd("rm", f"/relisted/{names[2]}", daemon=server)
    del want[names[2]]
    assert _ls(server, "/relisted") == want
    assert _ls(server, "/relisted") == want


def _writes(pid: int) -> int:
    """The write calls `pid` made so far: a listing helper writes each answer's messages."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError(f"no syscw in /proc/{pid}/io")


def test_a_large_directory_is_listed_by_the_helper_which_ends_with_the_daemon(tmp_path: Path) -> None:
    # Past its first 1,024 entries a local directory is listed by the mount's helper process,
    # started at the mount's first listing. nfs-ls and WebHDFS show exactly what the store has;
    # a kill -9 of the daemon ends the helper as well (its stdin closes).
    d = start(tmp_path / "data")
    try:
        for name in ("one", "two"):
            (d.data_dir / "ufs" / name).mkdir()
            for i in range(2500):
                (d.data_dir / "ufs" / name / f"f{i:05d}").write_bytes(b"x" * (i % 13))
        want = {f"f{i:05d}": ("-rw-r--r--", i % 13) for i in range(2500)}
        assert _ls(d, "/one") == want  # the helper's, or the threads' if it was still starting
        for _ in range(100):
            if helpers := listing_helpers(d.proc.pid):
                break
            time.sleep(0.1)
        assert len(helpers) == 1
        before = _writes(helpers[0])
        assert _ls(d, "/two") == want
        assert _writes(helpers[0]) >= before + 3  # it answered: pages, then the end
        got = requests.get(f"{d.url}/webhdfs/v1/two?op=LISTSTATUS&user.name=someone", timeout=30).json()
        statuses = got["FileStatuses"]["FileStatus"]
        assert {s["pathSuffix"]: s["length"] for s in statuses} == {n: size for n, (_, size) in want.items()}
        d.proc.kill()
        d.proc.wait(30)
        for _ in range(100):
            if not Path(f"/proc/{helpers[0]}").exists() or "Z" in _state(helpers[0]):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the listing helper outlived the daemon")
    finally:
        if d.proc.poll() is None:
            d.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _create_call(c: RpcClient, i: int, root: bytes, name: bytes) -> bytes:
    from nsd.protocols.rpc import oncrpc

    args = dirop(root, name) + b"\0\0\0\1" + b"\0" * 24  # GUARDED, empty sattr3
    return oncrpc.encode_call(0x500000 + i, 100003, 3, 8, args, cred=c.cred)


def test_the_standard_library_event_loop_serves_too(tmp_path: Path) -> None:
    """event_loop = asyncio (uvloop is the default): the same copies in and out, busy polling off."""
    d = start(tmp_path / "data", env={"NSD_EVENT_LOOP": "asyncio", "NSD_NFS_BUSY_POLL_US": "0"})
    try:
        status = json.loads(nsd("report", "--json", daemon=d).stdout)
        assert status["summary"]["event_loop"] == "asyncio"
        src = random_file(tmp_path / "src", 3 * MiB + 5)
        nsd("mkdir", "-p", "/std", daemon=d)
        run("nfs-cp", str(src), d.nfs_url("/std/f"))
        back = tmp_path / "back"
        run("nfs-cp", d.nfs_url("/std/f"), str(back))
        assert sha256(back) == sha256(src)
        assert "f" in run("nfs-ls", d.nfs_url("/std")).stdout.decode()
    finally:
        assert d.stop() == 0


def test_libnfs_c_api_pipelining_metadata_calls(server: Daemon, tmp_path: Path) -> None:
    """libnfs's asynchronous C API (tools/bench/nfsops.c, the benchmark's client) with 1 and 32
    GETATTRs or LOOKUPs in flight on one connection: every call answered NFS3_OK (nfsops exits 1
    on the first call that is not)."""
    binary = tmp_path / "nfsops"
    source = Path(__file__).resolve().parents[2] / "tools" / "bench" / "nfsops.c"
    run("cc", "-O2", "-o", str(binary), str(source), "-lnfs")
    nsd("mkdir", "-p", "/ops", daemon=server)
    run("nfs-cp", str(random_file(tmp_path / "src", 10)), server.nfs_url("/ops/f"))
    port = str(server.nfs_port)
    for proc in ("getattr", "lookup"):
        for outstanding in ("1", "32"):
            out = run(str(binary), "127.0.0.1", port, port, "/ops", "f", proc, outstanding, "0.3").stdout.decode()
            fields = dict(field.split("=") for field in out.split())
            assert int(fields["calls"]) > int(outstanding), out
            assert 0 < float(fields["p50_us"]) <= float(fields["p99_us"]), out


def test_a_directory_only_the_under_storage_has_mounts_and_reads(server: Daemon) -> None:
    # libnfs mounts the URL's directory: MNT must discover it as LOOKUP would (a path nobody listed yet)
    ufs_dir = server.data_dir / "ufs" / "only-in-ufs" / "deeper"
    ufs_dir.mkdir(parents=True)
    (ufs_dir / "f.txt").write_bytes(b"from the under-storage\n")
    got = run("nfs-cat", server.nfs_url("/only-in-ufs/deeper/f.txt"), stdout=subprocess.PIPE)
    assert got.returncode == 0 and got.stdout == b"from the under-storage\n", got.stderr
