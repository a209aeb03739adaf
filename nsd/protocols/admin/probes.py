"""`nsd doctor`'s look at the daemon's own listeners: does each port answer its protocol?

The admin API runs these and hands the results to nsd.doctor, which knows no protocol.
"""

from __future__ import annotations

from nsd.protocols.nfs3 import const as nfs3_const
from nsd.protocols.nfs3 import mount3, portmap
from nsd.protocols.rpc import client, oncrpc

PORT_TIMEOUT = 3.0

# A NULL call answers "is a server of this program really behind the port", not just "is it open".
_NULL_CALLS = {
    "nfs": [(nfs3_const.PROGRAM, nfs3_const.VERSION), (mount3.PROGRAM, mount3.VERSION)],
    "portmap": [(portmap.PROGRAM, portmap.VERSION)],
}


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


async def probe_listener(name: str, host: str, port: int) -> dict[str, str]:
    """A doctor check of listener `name`: it accepts connections and, for the RPC listeners,
    answers a NULL call of each of its programs."""
    check = f"{name} port"
    try:
        rpc = await client.RpcClient.connect(host, port, timeout=PORT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        return _check(check, "fail", f"cannot connect to {host}:{port}: {e}")
    try:
        for prog, vers in _NULL_CALLS.get(name, []):
            reply = await rpc.call(prog, vers, 0)
            if not (reply.accepted and reply.stat == oncrpc.SUCCESS):
                return _check(check, "fail", f"{host}:{port} refused a NULL call to program {prog} v{vers}")
    except client.ERRORS as e:
        return _check(check, "fail", f"{host}:{port} did not answer an RPC NULL call: {e}")
    finally:
        await rpc.close()
    return _check(check, "ok", f"{host}:{port} answers")


async def probe_listeners(addresses: dict[str, tuple[str, int]]) -> list[dict[str, str]]:
    """One check per listener, in the order given."""
    return [await probe_listener(name, host, port) for name, (host, port) in addresses.items()]
