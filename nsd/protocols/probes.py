"""Doctor's probes of the daemon's own doors: does each listener answer its protocol?"""

from __future__ import annotations

import asyncio

from nsd.ops.doctor import check
from nsd.protocols.nfs3 import const as nfs3_const
from nsd.protocols.nfs3 import mount3, portmap
from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.client import RpcClient, RpcError

PORT_TIMEOUT = 3.0


# A NULL call answers "is a server of this program really behind the port", not just "is it open".
NULL_CALLS = {
    "nfs": [(nfs3_const.PROGRAM, nfs3_const.VERSION), (mount3.PROGRAM, mount3.VERSION)],
    "portmap": [(portmap.PROGRAM, portmap.VERSION)],
}


async def probe_listener(name: str, host: str, port: int) -> dict[str, str]:
    """Connect to a listener; an RPC one must also answer a NULL call of each of its programs."""
    what = f"{name} port"
    try:
        client = await RpcClient.connect(host, port, timeout=PORT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        return check(what, "fail", f"cannot connect to {host}:{port}: {e}")
    try:
        for prog, vers in NULL_CALLS.get(name, []):
            reply = await asyncio.wait_for(client.call(prog, vers, 0), PORT_TIMEOUT)
            if not (reply.accepted and reply.stat == oncrpc.SUCCESS):
                return check(what, "fail", f"{host}:{port} refused a NULL call to program {prog} v{vers}")
    except (OSError, TimeoutError, RpcError) as e:
        return check(what, "fail", f"{host}:{port} did not answer an RPC NULL call: {e}")
    finally:
        await client.close()
    return check(what, "ok", f"{host}:{port} answers")


async def probe_listeners(listeners: dict[str, tuple[str, int]]) -> list[dict[str, str]]:
    """One check per listener: name -> (host, port) the daemon serves on."""
    return [await probe_listener(name, host, port) for name, (host, port) in listeners.items()]
