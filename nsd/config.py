"""Configuration: one schema, four sources. Precedence: flags > env (NSD_*) > file > defaults.

Each setting is declared once in SETTINGS; the shipped conf/nsd.toml and the README's reference
are written from the same table, and `Config.sources` says where each value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsd.errors import Invalid


@dataclass(frozen=True)
class Setting:
    section: str
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()  # the only values a str setting takes, when not empty
    bounds: tuple[int, int] | None = None  # the range a number must be in (inclusive)

    @property
    def env(self) -> str:
        return "NSD_" + self.name.upper()


PORTS = (0, 65535)

SETTINGS: tuple[Setting, ...] = (
    Setting("server", "bind", str, "127.0.0.1", "Address the listeners bind to."),
    Setting(
        "server",
        "http_port",
        int,
        9870,
        "HTTP port: admin API (/api/v1) and WebHDFS (/webhdfs/v1); 0: any free port.",
        bounds=PORTS,
    ),
    Setting("server", "nfs_port", int, 2049, "NFSv3 + MOUNT port (one port for both); 0: any free port.", bounds=PORTS),
    Setting(
        "server",
        "webhdfs_base_url",
        str,
        "",
        "scheme://host:port WebHDFS redirects send clients to (NAT, containers); "
        "empty: X-Forwarded-Proto/-Host, else the Host the client used.",
    ),
    Setting(
        "server",
        "event_loop",
        str,
        "uvloop",
        "Event loop: uvloop (libuv; less CPU per call, lower NFS latency) or asyncio (the standard library's).",
        ("uvloop", "asyncio"),
    ),
    Setting(
        "nfs",
        "nfs_exports",
        str,
        "/ 127.0.0.1(rw,no_root_squash)",
        "NFS exports, ';'-separated, /etc/exports style: PATH CLIENT(OPTIONS) ... where CLIENT is an "
        "address, a CIDR network or *; options rw|ro (default ro), root_squash (the default)|no_root_squash|"
        "all_squash, anonuid=N, anongid=N (default 65534). Clients outside every entry are refused.",
    ),
    Setting(
        "nfs",
        "portmapper",
        bool,
        False,
        "Serve a portmapper (v2) for unmodified NFS clients; if the port is taken, register with it.",
    ),
    Setting("nfs", "portmap_port", int, 111, "Port of the built-in portmapper.", bounds=PORTS),
    Setting(
        "nfs",
        "nfs_jukebox_after",
        float,
        0.0,
        "Seconds a READ waits on the under-storage before answering JUKEBOX (retry later; the read goes on); "
        "0: never, the READ waits for its data (libnfs and Windows clients fail a READ answered JUKEBOX).",
    ),
    Setting("nfs", "nfs_max_connections", int, 1024, "Open NFS connections at most; past it new ones are closed."),
    Setting(
        "nfs",
        "nfs_max_inflight",
        int,
        1024,
        "NFS calls in progress over all connections at most; past it calls are answered NFS3ERR_JUKEBOX "
        "(retry later) at once.",
    ),
    Setting(
        "nfs",
        "nfs_max_inflight_per_connection",
        int,
        64,
        "NFS calls in progress per connection at most; past it the connection is not read until one ends.",
    ),
    Setting(
        "nfs",
        "nfs_busy_poll_us",
        int,
        100,
        "Microseconds the daemon keeps polling (not sleeping) after NFS traffic, so a client's next call is "
        "taken without waking the CPU: lower latency for one-call-at-a-time clients for at most that much CPU "
        "per burst. 0: off.",
    ),
    Setting("nfs", "nfs_idle_timeout", float, 900.0, "Close an NFS connection after this many seconds without calls."),
    Setting(
        "nfs",
        "nfs_slow_client_timeout",
        float,
        60.0,
        "Abort an NFS connection whose replies stay unread this many seconds (its buffered replies are dropped).",
    ),
    Setting("http", "http_max_connections", int, 1024, "Open HTTP connections at most; past it: 503 and close."),
    Setting(
        "http",
        "http_max_requests",
        int,
        256,
        "HTTP requests in progress at most (WebHDFS and admin API); past it: 503 with Retry-After.",
    ),
    Setting(
        "http",
        "http_max_header_bytes",
        int,
        8190,
        "Longest request line or header field; longer requests get 400 and the connection is closed.",
    ),
    Setting(
        "http",
        "http_max_body_bytes",
        int,
        1 << 20,
        "Largest JSON/form request body (admin API, WebHDFS parameters): 413 past it. File uploads stream and "
        "are not limited by this.",
    ),
    Setting(
        "http", "http_idle_timeout", float, 75.0, "Close an idle HTTP (keep-alive) connection after this many seconds."
    ),
    Setting(
        "http",
        "http_body_timeout",
        float,
        60.0,
        "An upload that sends no data for this many seconds is answered 408 and its connection closed.",
    ),
    Setting(
        "security",
        "superuser",
        str,
        "",
        "User name (or uid) that bypasses permission checks, besides root and the user running nsd "
        "(empty: just those two, HDFS's convention).",
    ),
    Setting(
        "security",
        "supergroup",
        str,
        "supergroup",
        "Members of this group (name or gid) bypass permission checks, as HDFS's "
        "dfs.permissions.superusergroup; a group nobody knows has no members.",
    ),
    Setting(
        "security",
        "users",
        str,
        "",
        "User map shared by NFS and WebHDFS, ';'-separated NAME=UID[:GID[:GROUP,...]] (GID defaults to UID); "
        "names not here come from the machine's passwd, then numbers stand for themselves.",
    ),
    Setting(
        "security",
        "unknown_users",
        str,
        "map",
        "A user name nobody configured and the machine does not know (a Hadoop job's user from another "
        "cluster): map gives it an id from auto_id_range, once, journaled (as HDFS believes any name); "
        "refuse answers 403.",
        ("map", "refuse"),
    ),
    Setting(
        "security",
        "auto_id_range",
        str,
        "200000-299999",
        "Ids given to unknown user names (and their same-named primary groups), LOW-HIGH.",
    ),
    Setting(
        "security",
        "groups",
        str,
        "",
        "Group map, ';'-separated NAME=GID; names not here come from the machine's group database.",
    ),
    Setting(
        "security",
        "webhdfs_auth",
        str,
        "simple",
        "WebHDFS authentication: simple (believe user.name, as Hadoop without Kerberos) or token "
        "(Authorization: Bearer TOKEN, tokens from webhdfs_token_file; 401 without a valid one).",
    ),
    Setting(
        "security",
        "webhdfs_token_file",
        str,
        "",
        "File of 'USER TOKEN' lines for webhdfs_auth = token (# comments); must be mode 0600 or stricter.",
    ),
    Setting(
        "security",
        "webhdfs_proxy_users",
        str,
        "",
        "Who may use doas, ';'-separated: NAME hosts=ADDR|CIDR,...|* [users=U,...|*] [groups=G,...|*] "
        "(as hadoop.proxyuser.NAME.*); superusers may always.",
    ),
    Setting(
        "security",
        "tls_cert_file",
        str,
        "",
        "PEM certificate (chain) for HTTPS on the HTTP port (WebHDFS as swebhdfs, and the admin API); "
        "empty: plain HTTP.",
    ),
    Setting("security", "tls_key_file", str, "", "PEM private key of tls_cert_file; not readable by others."),
    Setting("storage", "data_dir", str, "./nsd-data", "Data dir: journal, checkpoints, token, lock."),
    Setting(
        "storage",
        "root_ufs",
        str,
        "",
        "URI of the under-storage mounted at / when the data dir is formatted "
        "(empty: a local directory <data_dir>/ufs).",
    ),
    Setting("journal", "fsync", bool, True, "fsync the journal before acknowledging (off only for tests)."),
    Setting("journal", "segment_bytes", int, 64 << 20, "Roll to a new journal segment past this size."),
    Setting(
        "journal",
        "journal_reserve_bytes",
        int,
        64 << 20,
        "Refuse changes (NFS NOSPC, WebHDFS 403, admin 507) while the journal's disk has less free space "
        "than this; reads go on, and changes are taken again once space is freed.",
    ),
    Setting("journal", "checkpoint_entries", int, 1_000_000, "Write a checkpoint after this many records."),
    Setting(
        "journal",
        "checkpoint_interval",
        float,
        3600.0,
        "Write a checkpoint after this many seconds if anything changed.",
    ),
    Setting("cache", "block_size", int, 4 << 20, "Bytes per cached block (files are cut on this grid)."),
    Setting("cache", "cache_memory_bytes", int, 256 << 20, "Capacity of the memory tier (0: no memory tier)."),
    Setting(
        "cache",
        "cache_dirs",
        str,
        "",
        "Disk tiers, fastest first: 'PATH:BYTES;PATH:BYTES' (BYTES may end in K, M, G or T); "
        "empty: <data_dir>/blocks with cache_disk_bytes.",
    ),
    Setting("cache", "cache_disk_bytes", int, 16 << 30, "Capacity of the default disk tier <data_dir>/blocks."),
    Setting("cache", "cache_high_watermark", float, 0.95, "Eviction starts when a tier is this full (fraction)."),
    Setting("cache", "cache_low_watermark", float, 0.85, "Eviction stops when a tier is down to this (fraction)."),
    Setting(
        "cache",
        "cache_verify_reads",
        bool,
        True,
        (
            "Verify blocks read from disk: hashed on the first read after a start and whenever the"
            " file changed since (corrupt ones are refetched)."
        ),
    ),
    Setting(
        "cache",
        "cache_read_ahead_blocks",
        int,
        4,
        "Missing blocks fetched from the under-storage ahead of a sequential reader, at once "
        "(0: none; more for a store far away).",
        bounds=(0, 64),
    ),
    Setting(
        "cache",
        "read_type",
        str,
        "CACHE",
        "Default read type of mounts without a read_type option: CACHE, CACHE_PROMOTE or NO_CACHE.",
    ),
    Setting(
        "cache",
        "write_type",
        str,
        "THROUGH",
        "Default write type of mounts without a write_type option: "
        "MUST_CACHE, CACHE_THROUGH, THROUGH or ASYNC_THROUGH.",
    ),
    Setting(
        "cache",
        "persist_delay",
        float,
        0.0,
        "Seconds a file written ASYNC_THROUGH waits before its upload starts: rewritten meanwhile it is "
        "uploaded once, removed meanwhile never (temporary files stay off the under-storage).",
        bounds=(0, 86400),
    ),
    Setting(
        "cache",
        "persist_retry_max",
        float,
        60.0,
        "Longest wait in seconds between tries of a background (ASYNC_THROUGH) persist.",
    ),
    Setting("cache", "ttl_check_interval", float, 10.0, "Seconds between looks for expired TTLs."),
    Setting(
        "cluster",
        "etcd",
        str,
        "",
        "Cluster mode: etcd client URLs, comma-separated (http://HOST:2379,...); empty: a single node, no etcd.",
    ),
    Setting("cluster", "cluster", str, "", "Cluster mode: the cluster's name (its keys in etcd live under it)."),
    Setting("cluster", "node", str, "", "Cluster mode: this node's name, unique in the cluster."),
    Setting(
        "cluster",
        "checkpoint_uri",
        str,
        "",
        "Cluster mode: a directory URI every node reaches where the leader keeps checkpoints; "
        "empty: .nsd-system/<cluster>/checkpoints in the root under-storage.",
    ),
    Setting(
        "cluster",
        "cluster_lease_ttl",
        float,
        5.0,
        "Cluster mode: seconds a node's etcd lease lives without renewal; a dead leader is replaced after it.",
    ),
    Setting("log", "log_level", str, "info", "debug, info, warning or error.", ("debug", "info", "warning", "error")),
    Setting("log", "log_format", str, "text", "text or json.", ("text", "json")),
    Setting("log", "audit_log", bool, False, "Log every change (who, what, from where) to the nsd.audit logger."),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    if setting.type is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise Invalid(f"{setting.name} from {source}: expected true/false, got {raw!r}")
    try:
        value = setting.type(raw)
    except (TypeError, ValueError):
        raise Invalid(f"{setting.name} from {source}: expected {setting.type.__name__}, got {raw!r}") from None
    if setting.choices and value not in setting.choices:
        raise Invalid(f"{setting.name} from {source}: expected one of {', '.join(setting.choices)}, got {raw!r}")
    if setting.bounds is not None and not setting.bounds[0] <= value <= setting.bounds[1]:
        low, high = setting.bounds
        raise Invalid(f"{setting.name} from {source}: expected {low}..{high}, got {raw!r}")
    return value


@dataclass
class Config:
    values: dict[str, Any]
    sources: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_path(self) -> Path:
        return Path(self.values["data_dir"]).resolve()

    @property
    def etcd_endpoints(self) -> list[str]:
        return [e.strip() for e in self.values["etcd"].split(",") if e.strip()]

    def check_cluster(self) -> None:
        """Invalid unless the cluster settings are all empty (single node) or complete and sound."""
        given = {name: self.values[name] for name in ("etcd", "cluster", "node") if self.values[name]}
        if not given:
            return
        missing = [f"--{name}" for name in ("etcd", "cluster", "node") if name not in given]
        if missing:
            raise Invalid(f"cluster mode needs --etcd, --cluster and --node; missing {', '.join(missing)}")
        for url in self.etcd_endpoints:
            if not url.startswith(("http://", "https://")) or url.count(":") < 2:
                raise Invalid(f"etcd: {url!r} is not an etcd client URL such as http://127.0.0.1:2379")
        for name in ("cluster", "node"):
            value = self.values[name]
            if not all(c.isalnum() or c in "-_." for c in value) or len(value) > 63:
                raise Invalid(f"{name}: {value!r} must be letters, digits, '-', '_' or '.' (at most 63)")
        if not 1.0 <= self.values["cluster_lease_ttl"] <= 60.0:
            raise Invalid(f"cluster_lease_ttl: {self.values['cluster_lease_ttl']} must be between 1 and 60 seconds")

    @property
    def root_ufs_uri(self) -> str:
        return self.values["root_ufs"] or (self.data_path / "ufs").as_uri()


def load(
    file: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    flags: dict[str, Any] | None = None,
) -> Config:
    """Merge defaults, the TOML file, NSD_* environment variables and flags (None = not given)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    values = {s.name: s.default for s in SETTINGS}
    sources = dict.fromkeys(values, "default")
    if file is not None:
        path = Path(file)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise Invalid(f"cannot read config {path}: {e}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise Invalid(f"{path}: [{section}] must be a table")
            for name, raw in table.items():
                setting = BY_NAME.get(name)
                if setting is None or setting.section != section:
                    raise Invalid(f"{path}: unknown setting {section}.{name}")
                values[name] = _coerce(setting, raw, str(path))
                sources[name] = f"file {path}"
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.name] = _coerce(setting, environ[setting.env], setting.env)
            sources[setting.name] = f"env {setting.env}"
    for name, raw in (flags or {}).items():
        if raw is not None:
            values[name] = _coerce(BY_NAME[name], raw, "flag")
            sources[name] = "flag"
    config = Config(values, sources)
    config.check_cluster()
    return config


def render_markdown() -> str:
    """The configuration reference table the README carries (a test keeps them equal)."""
    rows = ["| key | section | env | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = str(s.default).lower() if s.type is bool else str(s.default)
        rows.append(f"| `{s.name}` | {s.section} | `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(rows) + "\n"


def render_toml() -> str:
    """The default configuration as a commented TOML file (what conf/nsd.toml holds)."""
    lines = ["# nsd configuration. Precedence: flags > environment (NSD_<NAME>) > this file > defaults.", ""]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"[{section}]"] if len(lines) > 2 else [f"[{section}]"]
        value = str(s.default).lower() if s.type is bool else repr(s.default) if s.type is not str else f'"{s.default}"'
        lines += [f"# {s.help} (env {s.env})", f"{s.name} = {value}"]
    return "\n".join(lines) + "\n"
