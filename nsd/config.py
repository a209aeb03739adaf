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

    @property
    def env(self) -> str:
        return "NSD_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "bind", str, "127.0.0.1", "Address the listeners bind to."),
    Setting("server", "http_port", int, 9870, "HTTP port: admin API (/api/v1) and WebHDFS (/webhdfs/v1)."),
    Setting("server", "nfs_port", int, 2049, "NFSv3 + MOUNT port (one port for both)."),
    Setting(
        "server",
        "webhdfs_base_url",
        str,
        "",
        "scheme://host:port WebHDFS redirects send clients to (NAT, containers); "
        "empty: X-Forwarded-Proto/-Host, else the Host the client used.",
    ),
    Setting(
        "nfs",
        "nfs_exports",
        str,
        "/ 127.0.0.1(rw,no_root_squash)",
        "NFS exports, ';'-separated, /etc/exports style: PATH CLIENT(OPTIONS) ... "
        "(options rw|ro, root_squash|no_root_squash|all_squash, anonuid=N, anongid=N).",
    ),
    Setting(
        "nfs",
        "portmapper",
        bool,
        False,
        "Serve a portmapper (v2) for unmodified NFS clients; if the port is taken, register with it.",
    ),
    Setting("nfs", "portmap_port", int, 111, "Port of the built-in portmapper."),
    Setting(
        "nfs",
        "nfs_jukebox_after",
        float,
        2.0,
        "Seconds a READ waits on the under-storage before answering JUKEBOX (retry later); the read goes on.",
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
    Setting("log", "log_level", str, "info", "debug, info, warning or error."),
    Setting("log", "log_format", str, "text", "text or json."),
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
        return setting.type(raw)
    except (TypeError, ValueError):
        raise Invalid(f"{setting.name} from {source}: expected {setting.type.__name__}, got {raw!r}") from None


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
    return Config(values, sources)


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
