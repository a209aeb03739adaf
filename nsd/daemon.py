"""The composition root: data dir -> recovery -> vfs -> listeners, and an orderly stop.

Start-up formats an empty data dir, takes its lock, recovers the namespace and prints one
line containing `ready` with the listening addresses. SIGTERM/SIGINT stop accepting, let
in-flight requests finish, write a checkpoint and exit 0. A journal failure stops the daemon
without a checkpoint and exits 1: nothing may be acknowledged after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import stat as st
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from nsd import errors
from nsd.blockstore import BlockStore
from nsd.config import Config
from nsd.core.cache import setup as cache_setup
from nsd.core.cache.persister import Persister
from nsd.core.cache.service import CacheSettings
from nsd.core.core import Core
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.core.permissions import Permissions
from nsd.core.reconcile import Reconciler
from nsd.core.replication import boot
from nsd.core.replication.cluster import Behind, Cluster, Fenced
from nsd.core.replication.peers import COPIES, ClusterBlocks
from nsd.core.users import UserMap, parse_range
from nsd.datadir import DataDir
from nsd.errors import JournalFailed
from nsd.gcpause import PAUSES
from nsd.namespace.mounts import ROOT_MOUNT
from nsd.ops.metrics import Metrics
from nsd.ops.report import cache_line
from nsd.ops.ttl import TtlEnforcer
from nsd.protocols import cluster as cluster_http
from nsd.protocols.admin import api as admin
from nsd.protocols.http import limits as httplimits
from nsd.protocols.http import status
from nsd.protocols.nfs3.handles import SECRET_FILE
from nsd.protocols.nfs3.listener import start_nfs
from nsd.protocols.rpc.server import Limits
from nsd.protocols.webhdfs import routes as webhdfs
from nsd.protocols.webhdfs.auth import Authenticator, load_tokens, parse_proxy_users
from nsd.vfs import IDLE_SEAL_SECONDS, Vfs

log = logging.getLogger("nsd.daemon")

CHECKPOINT_POLL_SECONDS = 10.0
RECONCILE_AT_START_SECONDS = 10.0
SHUTDOWN_GRACE_SECONDS = 30.0
EXIT_RESTART = 75  # a deposed cluster leader starts over as a follower (main re-executes the daemon)


def assemble_vfs(
    store: MetaStore,
    mounts: MountTable,
    stage_dir: Path,
    *,
    perms: Permissions | None = None,
    blocks: BlockStore | None = None,
    cache_settings: CacheSettings | None = None,
    idle_seal_seconds: float = IDLE_SEAL_SECONDS,
) -> Vfs:
    """The facade over the parts under it (what the daemon, the tests and the benches build);
    with `blocks`, a cache and its background persister (started by `Vfs.start`)."""
    core = Core.build(store, mounts, stage_dir, perms=perms, blocks=blocks, cache_settings=cache_settings)
    core.perms.users.auto_ids = store.ns.auto_ids  # ids given to unknown names live in the namespace
    persister = None
    if core.cache is not None:
        persister = Persister(
            store,
            mounts,
            core.locks,
            core.cache.reader,
            core.discovery.mark_checked,
            delay=core.cache.settings.persist_delay,
            retry_max=core.cache.settings.persist_retry_max,
        )
    return Vfs(core, reconciler=Reconciler(core), persister=persister, idle_seal_seconds=idle_seal_seconds)


def format_data_dir(datadir: DataDir, root_ufs: str) -> None:
    """A new data dir: token, root mount, VERSION and checkpoint 0 (root owned by this user)."""
    datadir.format(root_ufs)
    initial_checkpoint(datadir.journal, root_uid=os.getuid(), root_gid=os.getgid())


def permissions(config: Config) -> Permissions:
    """The user map and the superusers from the config; Invalid for a superuser nobody knows."""
    users = UserMap(
        config.users,
        config.groups,
        auto_range=parse_range(config.auto_id_range),
        map_unknown=config.unknown_users == "map",
    )
    superusers = []
    if config.superuser:
        uid = users.uid_of(config.superuser)
        if uid is None:
            raise errors.Invalid(f"superuser: unknown user {config.superuser!r} (add it to `users`)")
        superusers.append(uid)
    supergroups = []
    if config.supergroup:
        gid = users.gid_of(config.supergroup)
        if gid is not None:
            supergroups.append(gid)
        elif config.sources["supergroup"] != "default":  # HDFS's default name: unknown is expected
            log.info("supergroup %r is not a known group: it has no members", config.supergroup)
    return Permissions(users, superusers=superusers, supergroups=supergroups)


def authenticator(config: Config, perms: Permissions) -> Authenticator:
    tokens = load_tokens(config.webhdfs_token_file) if config.webhdfs_token_file else None
    return Authenticator(
        perms.users,
        perms.is_super,
        mode=config.webhdfs_auth,
        tokens=tokens,
        proxy_users=parse_proxy_users(config.webhdfs_proxy_users),
    )


def tls_context(config: Config) -> ssl.SSLContext | None:
    """HTTPS for the HTTP port when a certificate is configured; None for plain HTTP."""
    if not config.tls_cert_file and not config.tls_key_file:
        return None
    if not (config.tls_cert_file and config.tls_key_file):
        raise errors.Invalid("TLS needs both tls_cert_file and tls_key_file")
    key = Path(config.tls_key_file)
    try:
        mode = key.stat().st_mode
    except OSError as e:
        raise errors.Invalid(f"tls_key_file {key}: {e.strerror or e}") from None
    if mode & 0o007:
        raise errors.Invalid(f"tls_key_file {key} is mode {st.S_IMODE(mode):04o}, open to others: chmod o-rwx {key}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as e:
        raise errors.Invalid(f"cannot load the TLS certificate {config.tls_cert_file} and key {key}: {e}") from None
    return context


async def run(config: Config) -> int:
    datadir = DataDir(config.data_path)
    if config.etcd:
        return await _run_node(config, datadir)
    if not datadir.is_formatted():
        log.info("formatting new data dir %s", datadir.path)
        format_data_dir(datadir, config.root_ufs_uri)
    datadir.check_version()
    datadir.check_token_mode()
    perms = permissions(config)
    auth = authenticator(config, perms)
    tls = tls_context(config)
    datadir.lock()
    try:
        return await _serve(config, datadir, perms, auth, tls)
    finally:
        datadir.unlock()


async def _run_node(config: Config, datadir: DataDir) -> int:
    """Cluster mode: lock the data dir, join the cluster through etcd (formatting it if new), serve."""
    perms = permissions(config)
    auth = authenticator(config, perms)
    tls = tls_context(config)
    datadir.path.mkdir(parents=True, exist_ok=True)
    datadir.lock()
    try:
        cluster = await boot.join(config, datadir, SECRET_FILE)
        return await _serve(config, datadir, perms, auth, tls, cluster)
    finally:
        datadir.unlock()


async def _serve(
    config: Config,
    datadir: DataDir,
    perms: Permissions,
    auth: Authenticator,
    tls: ssl.SSLContext | None,
    cluster: Cluster | None = None,
) -> int:
    stop = asyncio.Event()
    fatal: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)
        stop.set()

    settings = cache_setup.settings(config)  # a bad read/write type fails before anything opens
    store = await MetaStore.open(
        datadir.journal,
        fsync=config.fsync,
        segment_bytes=config.segment_bytes,
        checkpoint_entries=config.checkpoint_entries,
        checkpoint_interval=config.checkpoint_interval,
        on_fatal=on_fatal,
        reserve_bytes=config.journal_reserve_bytes,
    )
    if cluster is not None:
        cluster.attach(store)
        cluster.on_fenced = on_fatal
        try:
            await cluster.catch_up()
        except Behind as e:  # a checkpoint cut the log between loading it and now: load the newer one
            log.warning("%s; starting over", e)
            await store.close(checkpoint=False)
            return EXIT_RESTART
    # What is in memory now is mostly the namespace, long-lived: out of the collector's full walks.
    PAUSES.install()
    PAUSES.freeze("namespace loaded")
    mounts = MountTable(store.ns, datadir.root_ufs)
    await mounts.ufs(ROOT_MOUNT).mkdir("")
    blocks = await cache_setup.open_block_store(config, datadir.path)
    vfs = assemble_vfs(store, mounts, datadir.path / "staging", perms=perms, blocks=blocks, cache_settings=settings)
    ttl = TtlEnforcer(vfs, interval=settings.ttl_interval) if vfs.cache is not None else None
    if cluster is not None:
        cluster.on_leader.append(lambda: _lead(vfs, ttl))  # a follower must not change the UFS
    else:
        vfs.start()
        if ttl is not None:
            ttl.start()
        await _reconcile_at_start(vfs)

    metrics = Metrics()
    metrics.cluster = cluster
    peers = None
    if cluster is not None and vfs.cache is not None and blocks is not None:
        # the nodes' caches as one; blocks of unpersisted or pinned files are kept on two owners
        peers = ClusterBlocks(cluster, datadir.read_token(), settings.block_size, blocks, kept=lambda: vfs.ns.kept)
        vfs.cache.reader.peers = peers
        vfs.cache.copies, vfs.cache.copies_held = peers.copies, peers.copies_held
        vfs.cache.drop_elsewhere, vfs.cache.copies_wanted = peers.drop_elsewhere, COPIES
        peers.start()
        store.share = peers.share
        metrics.cluster_cache = peers
    logging.getLogger().addHandler(metrics.recent_errors)
    metrics.watch(vfs)
    limits = httplimits.HttpLimits(
        max_connections=config.http_max_connections,
        max_requests=config.http_max_requests,
        max_header_bytes=config.http_max_header_bytes,
        max_body_bytes=config.http_max_body_bytes,
        idle_timeout=config.http_idle_timeout,
        body_timeout=config.http_body_timeout,
    )
    app = web.Application(client_max_size=limits.max_body_bytes)
    overload = metrics.http_overload = httplimits.install(app, limits)
    status.add_routes(app, vfs, metrics, audit_log=config.audit_log, webhdfs_ops=frozenset(webhdfs.ALL_OPS))
    admin.add_routes(app, vfs, datadir, config)
    webhdfs.add_routes(app, vfs, webhdfs.Settings(base_url=config.webhdfs_base_url, placement=peers), auth)
    if cluster is not None:
        cluster_http.add_routes(
            app,
            cluster,
            lambda: store.writer.durable_txid,
            blocks=blocks,
            peers=peers,
            cache_report=lambda: cache_line(vfs, peers.counters.as_dict() if peers else {}),
        )
    else:
        cluster_http.add_single_node_route(app)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_SECONDS, access_log=None, **limits.runner_kwargs()
    )
    await runner.setup()
    site = httplimits.LimitedSite(
        runner, config.bind, config.http_port, limits.max_connections, overload, reuse_address=True, ssl_context=tls
    )
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise errors.NsdError(f"HTTP: cannot listen on {config.bind}:{config.http_port}: {e.strerror or e}") from None
    http_addr = _bound_address(site)
    nfs = await start_nfs(
        vfs,
        datadir.path,
        host=config.bind,
        port=config.nfs_port,
        exports_spec=config.nfs_exports,
        portmapper=config.portmapper,
        portmap_port=config.portmap_port,
        jukebox_after=config.nfs_jukebox_after,
        stats=metrics.requests,
        limits=Limits(
            max_connections=config.nfs_max_connections,
            max_total=config.nfs_max_inflight,
            idle_timeout=config.nfs_idle_timeout,
            slow_client_timeout=config.nfs_slow_client_timeout,
        ),
        max_inflight_per_connection=config.nfs_max_inflight_per_connection,
        cluster=cluster,
        busy_poll=config.nfs_busy_poll_us / 1e6,
    )
    metrics.rpc_servers = [nfs.server]
    metrics.nfs_answers = nfs.service
    listeners = app[admin.LISTENERS_KEY]
    listeners["http"] = (config.bind, int(http_addr.rsplit(":", 1)[1]))
    listeners["nfs"] = (config.bind, nfs.port)
    if nfs.portmapper is not None and nfs.portmap_port is not None:
        listeners["portmap"] = (config.bind, nfs.portmap_port)
    metrics.http_server = runner.server

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(_checkpoint_ticker(store))
    if cluster is not None:
        await cluster.start({"http": f"{'https' if tls else 'http'}://{http_addr}", "nfs": f"{config.bind}:{nfs.port}"})

    nfs_addr = f"{config.bind}:{nfs.port}"
    portmap_addr = f" portmap={config.bind}:{nfs.portmap_port}" if nfs.portmapper is not None else ""
    scheme = "https" if tls is not None else "http"
    print(f"nsd ready http={scheme}://{http_addr} nfs={nfs_addr}{portmap_addr} data_dir={datadir.path}", flush=True)
    log.info("serving; %d mount(s), root under-storage %s", len(store.ns.mounts) + 1, mounts.views()[0].uri)
    await stop.wait()

    log.info("stopping: no new connections, finishing in-flight requests")
    ticker.cancel()
    await nfs.close(SHUTDOWN_GRACE_SECONDS)
    await runner.cleanup()
    if cluster is not None:
        await cluster.stop()
    if peers is not None:
        await peers.close()
    await vfs.reconciler.close()
    if ttl is not None:
        await ttl.close()
    if not fatal:
        await vfs.close()
    await blocks.close()
    await mounts.close()
    if fatal:
        await store.close(checkpoint=False)
        if cluster is not None:
            await cluster.close()
            if isinstance(fatal[0], Fenced):
                log.warning("%s; starting over as a follower", fatal[0])
                return EXIT_RESTART
        log.critical("stopped after a journal failure: %s", fatal[0])
        return 1
    try:
        await store.close(checkpoint=True)
    except JournalFailed as e:
        log.critical("stopped without writing everything: %s", e)
        return 1
    finally:
        if cluster is not None:
            await cluster.close()
    log.info("stopped cleanly at txid %d", store.writer.last_txid)
    return 0


async def _reconcile_at_start(vfs: Vfs) -> None:
    """Settle under-storage changes a crash interrupted before serving, if the UFS answers soon.

    A UFS that is down must not block start-up: what is left stays open and the background
    pass retries it (`nsd doctor` and `nsd fsck` show it meanwhile)."""
    if not vfs.ns.intents:
        vfs.reconciler.start()
        return
    log.info("%d under-storage change(s) were interrupted; reconciling", len(vfs.ns.intents))
    first = vfs.reconciler.start()
    await asyncio.wait([first], timeout=RECONCILE_AT_START_SECONDS)
    if vfs.ns.intents:
        log.warning("%d interrupted under-storage change(s) not reconciled yet; retrying", len(vfs.ns.intents))


def _lead(vfs: Vfs, ttl: TtlEnforcer | None) -> None:
    """This node just became the cluster's leader: settle what a dead leader left open, persist
    what it had not persisted yet (ASYNC_THROUGH), run TTLs."""
    if vfs.ns.intents:
        log.info("%d under-storage change(s) left open by the last leader; reconciling", len(vfs.ns.intents))
    vfs.reconciler.start()
    vfs.start()
    if ttl is not None:
        ttl.start()


def _bound_address(site: web.TCPSite) -> str:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    host, port = sockets[0].getsockname()[:2]
    return f"{host}:{port}"


async def _checkpoint_ticker(store: MetaStore) -> None:
    """Time-based checkpoints when the daemon is idle (size-based ones fire on commit)."""
    while True:
        await asyncio.sleep(min(CHECKPOINT_POLL_SECONDS, store.checkpoint_interval))
        store.maybe_checkpoint()


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    import uvloop  # a dependency; imported here so `event_loop = "asyncio"` never loads it

    return uvloop.new_event_loop


def main(config: Config) -> int:
    try:
        with asyncio.Runner(loop_factory=_loop_factory(config.event_loop)) as runner:
            code = runner.run(run(config))
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()
    if code == EXIT_RESTART:
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "nsd.cli", *sys.argv[1:]])
    return code
