"""Mutations through the admin API while the daemon is SIGKILLed and restarted, round after round.

Invariant: every mutation acknowledged (2xx) before a kill is there after the restart, byte for
byte; a mutation in flight at the kill may or may not be there, but never half; and
`nsd journal verify` passes after every kill. Small segments and a low checkpoint threshold make
rolls and background checkpoints happen during the run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from daemon import Daemon, nsd, start

ROUNDS = int(os.environ.get("NSD_CRASH_ROUNDS", "20"))
WORKERS = 4
ENV = {"NSD_SEGMENT_BYTES": "16384", "NSD_CHECKPOINT_ENTRIES": "60"}


@dataclass
class Model:
    """What clients were told. `maybe` holds paths whose last change was in flight at a kill."""

    dirs: set[str] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    maybe: dict[str, set[bytes | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def worker(d: Daemon, model: Model, prefix: str, seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    s = d.session()
    base = f"{d.url}/api/v1"
    n = 0
    try:
        s.post(f"{base}/fs/mkdir", json={"path": prefix, "parents": True}, timeout=30).raise_for_status()
        with model.lock:
            model.dirs.add(prefix)
        while not stop.is_set():
            n += 1
            kind = rng.choice(["put", "put", "mkdir", "rename", "remove"])
            with model.lock:
                mine = sorted(p for p in model.files if p.startswith(prefix + "/"))
            if kind == "put" or not mine:
                path, data = f"{prefix}/f{n}", rng.randbytes(rng.choice([0, 1, 100, 5000, 70000]))
                with model.lock:
                    model.maybe[path] = {None, data}
                r = s.put(f"{base}/fs/content", params={"path": path}, data=data, timeout=30)
                r.raise_for_status()
                with model.lock:
                    model.files[path] = data
                    del model.maybe[path]
            elif kind == "mkdir":
                path = f"{prefix}/d{n}"
                s.post(f"{base}/fs/mkdir", json={"path": path}, timeout=30).raise_for_status()
                with model.lock:
                    model.dirs.add(path)
            elif kind == "rename":
                src, dst = rng.choice(mine), f"{prefix}/r{n}"
                with model.lock:
                    data = model.files.pop(src)
                    model.maybe[src] = {None, data}
                    model.maybe[dst] = {None, data}
                s.post(f"{base}/fs/rename", json={"src": src, "dst": dst}, timeout=30).raise_for_status()
                with model.lock:
                    del model.maybe[src], model.maybe[dst]
                    model.files[dst] = data
                    model.gone.add(src)
            else:
                victim = rng.choice(mine)
                with model.lock:
                    data = model.files.pop(victim)
                    model.maybe[victim] = {None, data}
                s.post(f"{base}/fs/remove", json={"path": victim}, timeout=30).raise_for_status()
                with model.lock:
                    del model.maybe[victim]
                    model.gone.add(victim)
    except requests.RequestException:
        return  # the daemon was killed under us: the last change stays in `maybe`


def check(d: Daemon, model: Model) -> None:
    s = requests.Session()
    base = f"{d.url}/api/v1"
    for path in model.dirs:
        r = s.get(f"{base}/fs/stat", params={"path": path})
        assert r.status_code == 200 and r.json()["type"] == "dir", (path, r.text)
    for path, data in model.files.items():
        r = s.get(f"{base}/fs/content", params={"path": path})
        assert r.status_code == 200, (path, r.text)
        assert r.content == data, f"{path}: {len(r.content)} bytes, expected {len(data)}"
    for path in model.gone:
        if path not in model.files and path not in model.maybe:
            assert s.get(f"{base}/fs/stat", params={"path": path}).status_code == 404, path
    for path, versions in model.maybe.items():
        r = s.get(f"{base}/fs/content", params={"path": path})
        seen = r.content if r.status_code == 200 else None
        assert seen in versions, f"{path}: a change in flight left something half done"


def test_acknowledged_changes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    data = tmp_path / "data"
    model = Model()
    acknowledged_total = 0
    for round_no in range(ROUNDS):
        d = start(data, env=ENV)
        try:
            check(d, model)
            stop = threading.Event()
            threads = [
                threading.Thread(target=worker, args=(d, model, f"/r{round_no}/w{i}", rng.random(), stop))
                for i in range(WORKERS)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 1.2))
            d.kill()
            stop.set()
            for t in threads:
                t.join(60)
        finally:
            if d.proc.poll() is None:
                d.kill()
        verify = nsd("journal", "verify", "--data-dir", str(data))
        assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()
        acknowledged_total = len(model.files) + len(model.dirs)

    d = start(data, env=ENV)
    try:
        check(d, model)
    finally:
        assert d.stop() == 0
    verify = nsd("journal", "verify", "--data-dir", str(data))
    assert verify.returncode == 0, verify.stderr.decode()
    assert acknowledged_total > ROUNDS * WORKERS  # the run really did work between kills
    assert list((data / "journal").glob("*.ckpt")), "background checkpoints ran"
