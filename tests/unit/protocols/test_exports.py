from __future__ import annotations

import pytest

from nsd import errors
from nsd.protocols.nfs3.exports import DEFAULT_EXPORTS, NOBODY, parse_exports
from nsd.protocols.rpc.oncrpc import AuthSys
from nsd.vfs import Caller

ROOT = AuthSys(0, b"h", 0, 0, ())
USER = AuthSys(0, b"h", 1000, 100, (5,))


def test_default_is_rw_root_for_localhost_only() -> None:
    [e] = parse_exports(DEFAULT_EXPORTS)
    assert (e.id, e.path) == (1, "/")
    rule = e.rule_for("127.0.0.1")
    assert rule is not None and rule.rw
    assert rule.caller(ROOT) == Caller(0, 0)
    assert e.rule_for("10.1.2.3") is None
    assert e.rule_for("::ffff:127.0.0.1") is not None


def test_options_and_squash() -> None:
    exports = parse_exports("/data 10.0.0.0/8(ro,all_squash,anonuid=7,anongid=8) *(rw); /home/ 127.0.0.1(rw)")
    data, home = exports
    assert (data.id, data.path, home.id, home.path) == (1, "/data", 2, "/home")
    inside = data.rule_for("10.9.9.9")
    assert inside is not None and not inside.rw and inside.caller(USER) == Caller(7, 8)
    anyone = data.rule_for("192.168.1.1")
    assert anyone is not None and anyone.rw
    assert anyone.caller(ROOT) == Caller(NOBODY, NOBODY)  # root_squash by default
    assert anyone.caller(USER) == Caller(1000, 100, (5,))
    assert anyone.caller(None) == Caller(NOBODY, NOBODY)


@pytest.mark.parametrize(
    "spec",
    ["/a", "/a 1.2.3.4(bogus)", "/a nothost(rw)", "/a 1.2.3.4(rw", "/a *(rw); /a *(ro)", "a *(rw)"],
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(errors.Invalid):
        parse_exports(spec)
