"""doctor's listener probe: a port must answer its protocol, not merely accept connections."""

from __future__ import annotations

import asyncio
import socket

from nsd.protocols.admin.probes import probe_listener


async def test_closed_port_fails() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        check = await probe_listener("nfs", "127.0.0.1", port)
    assert check["status"] == "fail" and "cannot connect" in check["detail"]


async def test_port_that_is_not_rpc_fails() -> None:
    async def chatter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(chatter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        nfs = await probe_listener("nfs", "127.0.0.1", port)
        http = await probe_listener("http", "127.0.0.1", port)
    assert nfs["status"] == "fail" and "NULL call" in nfs["detail"]
    assert http["status"] == "ok"  # for HTTP, accepting the connection is the check
