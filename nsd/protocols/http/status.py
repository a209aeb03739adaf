"""Observability over HTTP: `/metrics` (Prometheus text), `/` (a status page for a person),
and a middleware that counts and times every HTTP request by protocol and operation.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nsd import __version__
from nsd.ops.clients import USER_KEY
from nsd.ops.metrics import Metrics
from nsd.ops.report import build_report
from nsd.vfs import Vfs

METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
AUDIT_KEY: web.AppKey[bool] = web.AppKey("audit", bool)
# WebHDFS op names that get their own series (clients choose op: the set keeps series bounded)
WEBHDFS_OPS_KEY: web.AppKey[frozenset[str]] = web.AppKey("webhdfs_ops", frozenset)

log = logging.getLogger("nsd.http")
audit = logging.getLogger("nsd.audit")
STATUS_VFS_KEY: web.AppKey[Vfs] = web.AppKey("status_vfs", Vfs)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _label(request: web.Request) -> tuple[str, str]:
    """(protocol, op) of a request, with a bounded set of values."""
    path = request.path
    if path.startswith("/webhdfs/"):
        op = request.query.get("op", "").upper()
        return "webhdfs", op if op in request.app[WEBHDFS_OPS_KEY] else "other"
    if path.startswith("/api/"):
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else "?"
        return "admin", f"{request.method} {canonical.removeprefix('/api/v1')}"
    return "http", "page" if path in ("/", "/metrics") else "other"


async def _audit_target(request: web.Request) -> str:
    """The namespace path a change was about: in the query, or in an admin call's JSON body."""
    if "path" in request.query:
        return request.query["path"]
    if request.path.startswith("/webhdfs/v1"):
        return request.path.removeprefix("/webhdfs/v1") or "/"
    if request.content_type == "application/json" and request.body_exists:
        try:
            body = await request.json()  # already read by the handler: aiohttp returns the cached body
        except ValueError:
            return "?"
        if isinstance(body, dict):
            return " -> ".join(str(body[k]) for k in ("path", "src", "dst") if k in body) or "?"
    return "?"


def _user(request: web.Request, protocol: str) -> str:
    """Who a request acted as, by name (never a credential)."""
    return str(request.get(USER_KEY) or "-")


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS_KEY]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        protocol, op = _label(request)
        seconds = time.perf_counter() - started
        metrics.observe(protocol, op, seconds, str(status) if status >= 400 else None)
        if protocol != "http":
            user = _user(request, protocol)
            metrics.http_clients.seen(protocol, request.remote or "?", user[:64], error=status >= 400)
        log.debug("%s %s %s -> %d in %.1f ms", protocol, request.remote, op, status, seconds * 1e3)
        if request.app[AUDIT_KEY] and request.method not in ("GET", "HEAD"):
            audit.info(
                "protocol=%s remote=%s user=%s op=%r target=%r status=%d",
                protocol,
                request.remote,
                _user(request, protocol),
                op,
                await _audit_target(request),
                status,
            )


async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS_KEY].render(), content_type="text/plain", charset="utf-8")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


async def status_page(request: web.Request) -> web.Response:
    vfs = request.app[STATUS_VFS_KEY]
    metrics = request.app[METRICS_KEY]
    report = build_report(vfs, metrics)
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(m['path'])}</td><td>{'ro' if m['readonly'] else 'rw'}</td>"
        f'<td title="{e(m.get("last_error") or "")}">{e(m.get("state", ""))}</td><td>{e(m["uri"])}</td>'
        f"<td>{e(', '.join(f'{k}={v}' for k, v in sorted(m['options'].items())))}</td></tr>"
        for m in report["mounts"]
    )
    j = report["journal"]
    s = report["summary"]
    cache = _cache_section(report["cache"])
    errors = (
        "".join(
            f"<li><time>{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))}</time> {e(level)}: {e(msg)}</li>"
            for t, level, msg in reversed(metrics.recent_errors.records)
        )
        or "<li>none</li>"
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nsd status</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
th {{ background: #f3f3f3; }} .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>nsd {e(__version__)}</h1>
<p>up {s["uptime_s"]:.0f} s &middot; {s["inodes"]:,} inodes &middot; {s["mounts"]} mounts
&middot; {s["staged_files"]} files with staged writes</p>
<h2>Mounts</h2>
<table><tr><th>path</th><th>mode</th><th>state</th><th>under-storage</th><th>options</th></tr>{rows}</table>
{cache}
<h2>Journal</h2>
<table>
<tr><th>last txid</th><td class="num">{j["last_txid"]:,}</td></tr>
<tr><th>durable txid</th><td class="num">{j["durable_txid"]:,}</td></tr>
<tr><th>last checkpoint txid</th><td class="num">{j["checkpoint_txid"]:,}</td></tr>
<tr><th>last checkpoint took</th><td class="num">{j["checkpoint_seconds"]:.2f} s</td></tr>
<tr><th>records / fsyncs</th><td class="num">{j["appends"]:,} / {j["fsyncs"]:,}</td></tr>
<tr><th>segments on disk</th><td class="num">{j["segments"]} ({_fmt_bytes(j["segment_bytes"])})</td></tr>
</table>
{_cluster_section(report.get("cluster"))}
<h2>Recent errors</h2><ul>{errors}</ul>
<p><a href="/metrics">/metrics</a> &middot; <a href="/api/v1/report">/api/v1/report</a></p>
</body></html>"""
    return web.Response(text=body, content_type="text/html", charset="utf-8")


def _cluster_section(c: dict[str, Any] | None) -> str:
    """Cluster mode: this node's role, lag and failovers (`nsd cluster status` has every node)."""
    if c is None:
        return ""
    e = html.escape
    rtt = c["etcd_rtt_seconds_total"] / c["etcd_calls"] if c["etcd_calls"] else 0.0
    return f"""<h2>Cluster {e(c["cluster"])}</h2>
<table>
<tr><th>node / role</th><td>{e(c["node"])} / {e(c["role"])}</td></tr>
<tr><th>leader</th><td>{e(c["leader"] or "none")}</td></tr>
<tr><th>applied txid / lag</th><td class="num">{c["applied_txid"]:,} / {c["lag"]:,}</td></tr>
<tr><th>failovers seen</th><td class="num">{c["failovers"]:,}</td></tr>
<tr><th>newest shared checkpoint</th><td class="num">{c["checkpoint_txid"]:,}</td></tr>
<tr><th>etcd</th><td>{"up" if c["etcd_healthy"] else "unreachable"}, mean round trip {1000 * rtt:.1f} ms</td></tr>
</table>"""


def _cache_section(c: dict[str, Any]) -> str:
    """Capacity and use per tier, hit ratio, dedup, pending persists (the status page's cache part)."""
    if not c.get("enabled"):
        return "<h2>Cache</h2><p>no block cache</p>"
    rows = "".join(
        f"<tr><td>{html.escape(t['tier'])}</td><td>{html.escape(t['path'])}</td>"
        f'<td class="num">{_fmt_bytes(t["capacity"])}</td><td class="num">{_fmt_bytes(t["used"])}</td>'
        f'<td class="num">{100 * t["used"] / t["capacity"] if t["capacity"] else 0:.1f}%</td>'
        f'<td class="num">{t["blocks"]:,}</td></tr>'
        for t in c["tiers"]
    )
    return f"""<h2>Cache</h2>
<table><tr><th>tier</th><th>path</th><th>capacity</th><th>used</th><th>use</th><th>blocks</th></tr>{rows}</table>
<table>
<tr><th>hit ratio</th><td class="num">{100 * c["hit_ratio"]:.1f}% ({c["hits"]:,} hits, {c["misses"]:,} misses)</td></tr>
<tr><th>read from cache / under-storage</th>
<td class="num">{_fmt_bytes(c["bytes_from_cache"])} / {_fmt_bytes(c["bytes_from_ufs"])}</td></tr>
<tr><th>logical / physical (dedup)</th>
<td class="num">{_fmt_bytes(c["logical_bytes"])} / {_fmt_bytes(c["physical_bytes"])} ({c["dedup_ratio"]:.2f}x)</td></tr>
<tr><th>evictions</th><td class="num">{c["evictions"]:,}</td></tr>
<tr><th>pending persists</th><td class="num">{c["pending_persists"]:,}</td></tr>
<tr><th>corrupt blocks found</th><td class="num">{c["corrupt_blocks"]:,}</td></tr>
</table>"""


def add_routes(
    app: web.Application,
    vfs: Vfs,
    metrics: Metrics,
    *,
    audit_log: bool = False,
    webhdfs_ops: frozenset[str] = frozenset(),
) -> None:
    app[METRICS_KEY] = metrics
    app[AUDIT_KEY] = audit_log
    app[WEBHDFS_OPS_KEY] = webhdfs_ops
    app[STATUS_VFS_KEY] = vfs
    app.middlewares.insert(0, observe_middleware)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/", status_page)
