"""A tiny WebHDFS server over a local directory, for the adapter's tests (nsd's own WebHDFS
server lives on another branch). It speaks the parts the adapter uses, with the real
protocol's shape: 307 redirects for OPEN/CREATE/APPEND, LISTSTATUS_BATCH pages, and
RemoteException bodies for errors."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

PAGE = 7  # small, so paging is exercised


def _remote(status: int, exception: str, message: str) -> web.Response:
    body = {"RemoteException": {"exception": exception, "javaClassName": f"java.io.{exception}", "message": message}}
    return web.json_response(body, status=status)


def _fs(p: Path) -> dict[str, object]:
    st = p.stat()
    is_dir = p.is_dir()
    return {
        "pathSuffix": p.name,
        "type": "DIRECTORY" if is_dir else "FILE",
        "length": 0 if is_dir else st.st_size,
        "modificationTime": st.st_mtime_ns // 1_000_000,
        "permission": oct(st.st_mode & 0o777)[2:],
    }


@dataclass
class Fake:
    root: Path
    port: int
    runner: web.AppRunner
    token: str | None = None
    calls: int = 0

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve_fake(root: Path, token: str = "t0ken-secret-123", port: int = 0) -> Fake:
    root.mkdir(parents=True, exist_ok=True)
    fake = Fake(root, 0, web.AppRunner(web.Application()), token)

    async def handle(request: web.Request) -> web.StreamResponse:
        fake.calls += 1
        q = request.query
        if fake.token and q.get("delegation") != fake.token:
            return _remote(403, "AccessControlException", "bad or missing delegation token")
        rel = request.match_info["path"].strip("/")
        p = fake.root / rel
        op = q.get("op", "")
        exists = p.exists()
        if op == "GETFILESTATUS":
            if not exists:
                return _remote(404, "FileNotFoundException", f"File does not exist: /{rel}")
            return web.json_response({"FileStatus": _fs(p)})
        if op in ("LISTSTATUS", "LISTSTATUS_BATCH"):
            if not exists:
                return _remote(404, "FileNotFoundException", f"File /{rel} does not exist.")
            names = sorted(os.listdir(p)) if p.is_dir() else []
            statuses = [_fs(p / n) for n in names] if p.is_dir() else [_fs(p)]
            if op == "LISTSTATUS":
                return web.json_response({"FileStatuses": {"FileStatus": statuses}})
            after = q.get("startAfter")
            rest = [s for s in statuses if after is None or str(s["pathSuffix"]) > after]
            page = rest[:PAGE]
            listing = {
                "partialListing": {"FileStatuses": {"FileStatus": page}},
                "remainingEntries": len(rest) - len(page),
            }
            return web.json_response({"DirectoryListing": listing})
        if op == "OPEN":
            if "datanode" not in q:
                raise web.HTTPTemporaryRedirect(str(request.url.update_query(datanode="1")))
            if not p.is_file():
                return _remote(404, "FileNotFoundException", f"File does not exist: /{rel}")
            offset, length = int(q.get("offset", 0)), int(q.get("length", 1 << 40))
            with open(p, "rb") as f:
                f.seek(offset)
                return web.Response(body=f.read(length))
        if op in ("CREATE", "APPEND"):
            if "datanode" not in q:
                raise web.HTTPTemporaryRedirect(str(request.url.update_query(datanode="1")))
            if op == "APPEND" and not p.is_file():
                return _remote(404, "FileNotFoundException", f"File does not exist: /{rel}")
            if op == "CREATE" and exists and q.get("overwrite") != "true":
                return _remote(403, "FileAlreadyExistsException", f"/{rel} already exists")
            if not p.parent.is_dir():
                return _remote(404, "FileNotFoundException", f"Parent of /{rel} does not exist")
            with open(p, "ab" if op == "APPEND" else "wb") as f:
                async for chunk in request.content.iter_chunked(1 << 16):
                    f.write(chunk)
            return web.Response(status=201 if op == "CREATE" else 200)
        if op == "MKDIRS":
            if p.is_file():
                return _remote(403, "FileAlreadyExistsException", f"Path is not a directory: /{rel}")
            p.mkdir(parents=True, exist_ok=True)
            return web.json_response({"boolean": True})
        if op == "DELETE":
            if not exists:
                return web.json_response({"boolean": False})
            if p.is_dir():
                if any(p.iterdir()) and q.get("recursive") != "true":
                    return _remote(403, "PathIsNotEmptyDirectoryException", f"/{rel} is non empty")
                shutil.rmtree(p)
            else:
                p.unlink()
            return web.json_response({"boolean": True})
        if op == "RENAME":
            dst = fake.root / q["destination"].strip("/")
            if not exists or dst.exists() or not dst.parent.is_dir():
                return web.json_response({"boolean": False})
            os.rename(p, dst)
            return web.json_response({"boolean": True})
        if op == "TRUNCATE":
            os.truncate(p, int(q["newlength"]))
            return web.json_response({"boolean": True})
        return _remote(400, "IllegalArgumentException", f"Invalid value for webhdfs parameter op: {op}")

    fake.runner.app.router.add_route("*", "/webhdfs/v1{path:.*}", handle)
    await fake.runner.setup()
    site = web.TCPSite(fake.runner, "127.0.0.1", port)
    await site.start()
    fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return fake
