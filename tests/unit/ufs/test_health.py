"""HealthUfs: a mount's state for `mount ls`, failing fast while the store is down, one probe
per interval, and recovery, on the fault-injecting memory store."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsd import errors
from nsd.ufs import open_ufs
from nsd.ufs.adapters.memory import drop_store, store
from nsd.ufs.wrap.health import CONNECTED, UNREACHABLE, UNUSED, HealthUfs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def name() -> Iterator[str]:
    n = "health-" + secrets.token_hex(4)
    yield n
    drop_store(n)


FAST = {"retries": "2", "retry_base_s": "0.001", "token": "tok-SECRET-value"}


async def test_down_store_fails_fast_after_the_first_failure_and_recovers(name: str) -> None:
    clock = Clock()
    ufs = HealthUfs(open_ufs(f"memory://{name}", FAST), probe_after=5.0, clock=clock)
    s = store(name)
    s.put("f", b"data")
    assert ufs.status()["state"] == UNUSED
    assert (await ufs.stat("f")).size == 4
    assert ufs.status()["state"] == CONNECTED

    s.set_down(True)
    with pytest.raises(errors.UfsUnavailable, match="down"):
        await ufs.read("f", 0, 4)
    calls = s.calls
    assert ufs.status()["state"] == UNREACHABLE and "down" in ufs.status()["last_error"]
    for _ in range(3):  # refused without reaching the store, quoting the last error
        with pytest.raises(errors.UfsUnavailable, match=r"unreachable .*down.*next try in 5\.0s"):
            await ufs.stat("f")
    assert s.calls == calls and ufs.fast_failures == 3

    clock.now += 5.0  # one probe goes to the store; it fails again: another interval
    with pytest.raises(errors.UfsUnavailable, match="memory store is down"):
        await ufs.stat("f")
    assert s.calls > calls
    with pytest.raises(errors.UfsUnavailable, match="unreachable"):
        await ufs.stat("f")

    s.set_down(False)
    with pytest.raises(errors.UfsUnavailable, match="unreachable"):
        await ufs.stat("f")  # back, but nobody has probed yet
    clock.now += 5.0
    assert await ufs.read("f", 0, 4) == b"data"
    assert ufs.status()["state"] == CONNECTED
    assert [e.name async for e in ufs.list("")] == ["f"]


async def test_answers_that_are_errors_still_mean_connected(name: str) -> None:
    ufs = HealthUfs(open_ufs(f"memory://{name}", FAST), probe_after=0)
    with pytest.raises(errors.NotFound):
        await ufs.stat("missing")
    assert ufs.status()["state"] == CONNECTED
    store(name).set_down(True)
    with pytest.raises(errors.UfsUnavailable):
        await ufs.stat("missing")
    store(name).set_down(False)
    with pytest.raises(errors.NotFound):
        await ufs.stat("missing")  # probe_after 0: the next call probes at once
    assert ufs.status()["state"] == CONNECTED


async def test_a_listing_that_fails_marks_the_store_down(name: str) -> None:
    ufs = HealthUfs(open_ufs(f"memory://{name}", FAST), probe_after=60)
    store(name).set_down(True)
    with pytest.raises(errors.UfsUnavailable):
        [e async for e in ufs.list("")]
    assert ufs.status()["state"] == UNREACHABLE
    with pytest.raises(errors.UfsUnavailable, match="failing fast"):
        [e async for e in ufs.list("")]


async def test_state_and_errors_never_show_secrets(name: str) -> None:
    ufs = HealthUfs(open_ufs(f"memory://{name}", FAST), probe_after=60)
    store(name).faults.permanent = errors.UfsUnavailable("cannot reach: token tok-SECRET-value refused")
    with pytest.raises(errors.UfsUnavailable):
        await ufs.stat("")
    shown = json.dumps(ufs.describe())
    assert "tok-SECRET-value" not in shown and "****" in shown
    with pytest.raises(errors.UfsUnavailable) as e:
        await ufs.stat("")
    assert "tok-SECRET-value" not in str(e.value)


async def test_faults_file_drives_a_store_from_another_process(name: str, tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    ufs = open_ufs(f"memory://{name}", {"faults_file": str(faults), "retries": "1"})
    await ufs.mkdir("d")
    faults.write_text(json.dumps({"down": True}))
    with pytest.raises(errors.UfsUnavailable, match="down"):
        await ufs.stat("d")
    faults.write_text(json.dumps({"latency": 0.01, "down": False, "pad": "x"}))
    assert (await ufs.stat("d")).is_dir
    assert store(name).faults.latency == 0.01
    faults.unlink()
    assert (await ufs.stat("d")).is_dir and store(name).faults.latency == 0.0
