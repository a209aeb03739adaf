"""Every `nsd` command against a running daemon (or its stopped data dir), in both output modes:
human text and --json. The command tree is read from the CLI itself, so a new command without a
run here fails the last assertion."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import typer.main
from daemon import Daemon, nsd, start

from nsd.cli import app

MiB = 1 << 20
# These print a file's bytes, or run the daemon: there is no JSON form of them.
RAW = {("cat",), ("fs", "cat"), ("head",), ("fs", "head"), ("tail",), ("fs", "tail"), ("serve",)}
ALIAS_GROUPS = ("fs", "cache")  # `nsd fs ls` is `nsd ls`, `nsd cache pin` is `nsd pin`


def leaves(command: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if hasattr(command, "commands"):
        return {leaf for name, sub in command.commands.items() for leaf in leaves(sub, (*prefix, name))}
    return {prefix}


class Runner:
    def __init__(self, d: Daemon | None = None) -> None:
        self.d = d
        self.ran: set[tuple[str, ...]] = set()

    def run(self, words: tuple[str, ...], *args: str, json_mode: bool, code: int = 0) -> Any:
        extra = ("--json",) if json_mode else ()
        result = nsd(*words, *extra, *args, daemon=self.d)
        assert result.returncode == code, (words, args, result.stderr.decode())
        out = result.stdout.decode()
        if json_mode:
            self.ran.add(words)
            return json.loads(out)
        return out

    def both(self, words: tuple[str, ...], human_args: tuple[str, ...], json_args: tuple[str, ...]) -> tuple[str, Any]:
        """Run `words` once as text and once with --json (args differ when the first run changes state)."""
        return self.run(words, *human_args, json_mode=False), self.run(words, *json_args, json_mode=True)


def test_every_command_in_both_output_modes(tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    (ufs / "in").mkdir(parents=True)
    (ufs / "in" / "data").write_bytes(os.urandom(2 * MiB + 5))
    local = tmp_path / "local"
    local.write_bytes(b"0123456789" * 100)
    d = start(tmp_path / "data", env={"NSD_BLOCK_SIZE": str(MiB)})
    r = Runner(d)
    try:
        human, js = r.both(("mount", "add"), ("/m", ufs.as_uri()), ("/m2", ufs.as_uri(), "-o", "sync_interval=60"))
        assert human == "" and js["path"] == "/m2" and js["options"] == {"sync_interval": "60"}
        human, js = r.both(("mount", "ls"), (), ())
        assert "/m2" in human and {m["path"] for m in js} == {"/", "/m", "/m2"}
        human, js = r.both(("mkdir",), ("/m/a",), ("/m/b",))
        assert human == "" and js["type"] == "dir" and js["path"] == "/m/b"
        human, js = r.both(("put",), (str(local), "/m/a/f"), (str(local), "/m/b/f"))
        assert human == "" and js["size"] == 1000
        human, js = r.both(("get",), ("/m/a/f", str(tmp_path / "g1")), ("/m/b/f", str(tmp_path / "g2")))
        assert human == "" and js == {"path": "/m/b/f", "local": str(tmp_path / "g2"), "bytes": 1000}
        assert (tmp_path / "g1").read_bytes() == (tmp_path / "g2").read_bytes() == local.read_bytes()
        human, js = r.both(("ls",), ("/m",), ("/m",))
        assert human.split() == ["a", "b", "in"] and [e["name"] for e in js] == ["a", "b", "in"]
        human, js = r.both(("stat",), ("/m/a/f",), ("/m/a/f",))
        assert "size: 1000" in human and js["size"] == 1000 and js["persisted"] is True
        human, js = r.both(("mv",), ("/m/a/f", "/m/a/g"), ("/m/b/f", "/m/b/g"))
        assert human == "" and js == {"src": "/m/b/f", "dst": "/m/b/g"}
        human, js = r.both(("chmod",), ("600", "/m/a/g"), ("640", "/m/b/g"))
        assert human == "" and js["mode"] == 0o640
        me = str(os.getuid())
        human, js = r.both(("chown",), (f"{me}:0", "/m/a/g"), (f"{me}:0", "/m/b/g"))
        assert human == "" and js["gid"] == 0
        human, js = r.both(("chgrp",), ("0", "/m/a/g"), ("0", "/m/b/g"))
        assert human == "" and js["gid"] == 0
        human, js = r.both(("test",), ("-d", "/m/a"), ("-f", "/m/a/g"))
        assert human == "" and js == {"path": "/m/a/g", "true": True}
        human, js = r.both(("df",), ("-h",), ())
        assert "Use%" in human and "iB" in human and js["capacity"] >= js["remaining"] > 0
        human, js = r.both(("cluster", "status"), (), ())
        assert "not part of a cluster" in human and js["cluster"] is None and js["nodes"] == []
        human, js = r.both(("users", "ls"), (), ())
        assert human.splitlines()[0].split() == ["NAME", "UID", "GID", "SOURCE", "GROUPS"] and js == []
        human, js = r.both(("touch",), ("/m/a/t",), ("/m/b/t",))
        assert human == "" and js["size"] == 0
        human, js = r.both(("du",), ("/m/a",), ("/m/a", "/m/b"))
        assert human.split() == ["1000", "/m/a"] and js == [
            {"path": "/m/a", "bytes": 1000},
            {"path": "/m/b", "bytes": 1000},
        ]
        human, js = r.both(("count",), ("/m",), ("/m",))
        assert human.split() == ["4", "5", "2099157", "/m"] and js[0]["files"] == 5
        human, js = r.both(("cp",), ("/m/a/g", "/m/cp1"), ("/m/b/g", "/m/cp2"))
        assert human == "" and js == {"copied": ["/m/cp2"]}
        human, js = r.both(("checksum",), ("/m/a/g",), ("/m/b/g",))
        assert "MD5-of-0MD5-of-512CRC32C" in human and js[0]["length"] == 28
        human, js = r.both(("setfattr",), ("/m/a/g", "-n", "user.k", "-v", "v"), ("/m/b/g", "-n", "user.k", "-v", "v"))
        assert human == "" and js["path"] == "/m/b/g"
        human, js = r.both(("getfattr",), ("/m/a/g",), ("/m/b/g",))
        assert human.strip() == 'user.k="v"' and js == {"user.k": "v"}
        human, js = r.both(("find",), ("/m", "-name", "cp1"), ("/m", "-name", "cp*"))
        assert human.split() == ["/m/cp1"] and js == ["/m/cp1", "/m/cp2"]
        human, js = r.both(("truncate",), ("-s", "3", "/m/cp1"), ("-s", "3", "/m/cp2"))
        assert human == "" and js["size"] == 3
        assert nsd("fs", "head", "-c", "3", "/m/a/g", daemon=d).stdout == b"012"
        assert nsd("fs", "tail", "-c", "2", "/m/a/g", daemon=d).stdout == b"89"
        assert nsd("cat", "/m/a/g", daemon=d).stdout == local.read_bytes()
        human, js = r.both(("sync",), ("/m",), ("-r", "/m"))
        assert "directories listed" in human and js["directories_listed"] >= 3

        human, js = r.both(("load",), ("-r", "/m/in"), ("/m/in/data",))
        assert "loaded 1 file" in human and js["bytes_already_cached"] == 2 * MiB + 5
        human, js = r.both(("pin",), ("/m/in",), ("/m/in/data",))
        assert "pinned 1 file in 1 directory" in human and js["changed"] == 0
        human, js = r.both(("unpin",), ("/m/in",), ("/m/in/data",))
        assert "unpinned 1 file" in human and js["pinned"] is False
        human, js = r.both(("free",), ("/m/in/data",), ("/m/in/data",))
        assert "freed 1 file" in human and js["freed_files"] == 0  # nothing left to free
        human, js = r.both(("persist",), ("/m/a/g",), ("-r", "/m/b"))
        assert "already persisted" in human and js["already_persisted"] == 2
        human, js = r.both(("ttl", "set"), ("/m/a/g", "3600"), ("/m/b/g", "3600", "--action", "delete"))
        assert "free at" in human and js["action"] == "delete"
        human, js = r.both(("ttl", "ls"), (), ())
        assert "/m/a/g" in human and [t["path"] for t in js] == ["/m/a/g", "/m/b/g"]
        human, js = r.both(("ttl", "rm"), ("/m/a/g",), ("/m/b/g",))
        assert "removed" in human and js["removed"] is True

        human, js = r.both(("report",), (), ("cache",))
        assert "cache tiers" in human and js["cache"]["tiers"][1]["tier"] == "disk0"
        human, js = r.both(("conf", "show"), (), ())
        assert "block_size" in human and js["block_size"]["source"] == "env NSD_BLOCK_SIZE"
        human, js = r.both(("fsck",), (), ("/m",))
        assert "clean" in human and js["clean"] is True
        human, js = r.both(("doctor",), (), ())
        assert "cache tier disk0" in human and {c["check"] for c in js} >= {"journal", "mount /m", "pending persists"}

        human, js = r.both(("rm",), ("/m/a/t",), ("-r", "/m/b"))
        assert human == "" and js == {"removed": "/m/b"}
        human, js = r.both(("mount", "rm"), ("/m2",), ("/m",))
        assert human == "" and js == {"unmounted": "/m"}

        human, js = r.both(("journal", "backup"), ("-q", str(tmp_path / "b1.tgz")), ("-q", str(tmp_path / "b2.tgz")))
        assert "written to" in human and js["file"] == str(tmp_path / "b2.tgz") and js["lost_blocks"] == 0
    finally:
        assert d.stop() == 0

    off = Runner()
    data = ["--data-dir", str(tmp_path / "data")]
    human, js = off.both(("journal", "verify"), tuple(data), tuple(data))
    assert human.startswith("ok") and js["ok"] is True and js["errors"] == []
    human = off.run(("journal", "dump"), *data, json_mode=False)
    records = [json.loads(line) for line in nsd("journal", "dump", "--json", *data).stdout.splitlines()]
    off.ran.add(("journal", "dump"))
    assert "AddMount" in human and any(rec.get("op") == "AddMount" for rec in records)
    assert re.search(r"MkNode +path=/m/a/t .*mode=100644 ", human)  # paths named, modes in octal
    assert {"path": "/m2"} in [rec.get("paths") for rec in records if rec.get("op") == "AddMount"]
    human, js = off.both(("journal", "checkpoint"), tuple(data), tuple(data))
    assert "checkpoint at txid" in human and js["checkpoint_txid"] > 0
    human, js = off.both(("journal", "repair"), tuple(data), tuple(data))
    assert "no corruption found" in human and js["cut_file"] is None
    human, js = off.both(
        ("journal", "restore"),
        (str(tmp_path / "b1.tgz"), "--data-dir", str(tmp_path / "r1")),
        (str(tmp_path / "b2.tgz"), "--data-dir", str(tmp_path / "r2")),
    )
    assert "restored txid" in human and js["data_dir"] == str(tmp_path / "r2")
    human, js = off.both(("format",), ("--data-dir", str(tmp_path / "f1")), ("--data-dir", str(tmp_path / "f2")))
    assert "formatted" in human and js["root_ufs"] == (tmp_path / "f2" / "ufs").as_uri()

    r.ran.add(("cluster", "remove"))  # needs a cluster: both modes in test_cluster.py (a stopped node)
    every = leaves(typer.main.get_command(app))
    ran = r.ran | off.ran
    missing = {c for c in every - RAW if c not in ran and not (c[0] in ALIAS_GROUPS and c[1:] in ran)}
    assert missing == set(), f"commands never run in both modes: {sorted(missing)}"
