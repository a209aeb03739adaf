"""NFS exports: which namespace paths are served, to which clients, how.

Syntax (the `nfs_exports` setting), entries separated by ";" or newlines, like /etc/exports:

    PATH CLIENT(OPTIONS) [CLIENT(OPTIONS) ...]

CLIENT is an address or network (`127.0.0.1`, `10.0.0.0/8`, `*` for anyone). OPTIONS, comma
separated: `rw` or `ro` (default ro), `root_squash` (default), `no_root_squash`,
`all_squash`, `anonuid=N`, `anongid=N`. The default setting is `/ 127.0.0.1(rw,no_root_squash)`.
Export ids are positions (1, 2, ...) and go into file handles: keep the order stable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from nsd import errors
from nsd.namespace.names import split_path
from nsd.protocols.rpc.oncrpc import AuthSys
from nsd.vfs import Caller

DEFAULT_EXPORTS = "/ 127.0.0.1(rw,no_root_squash)"
NOBODY = 65534

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_in(host: str, networks: tuple[Network, ...]) -> bool:
    """Whether address `host` lies in one of `networks` (an IPv4-mapped IPv6 address counts as IPv4)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)


@dataclass(frozen=True, slots=True)
class Rule:
    network: Network | None  # None: any client
    rw: bool = False
    squash: str = "root"  # "none", "root" or "all"
    anonuid: int = NOBODY
    anongid: int = NOBODY
    _callers: dict[tuple[int, int, tuple[int, ...]] | None, Caller] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def matches(self, host: str) -> bool:
        return self.network is None or host_in(host, (self.network,))

    def caller(self, cred: AuthSys | None) -> Caller:
        """The identity a request acts as after squashing (AUTH_NONE is anonymous). Asked on
        every call: answers are kept per credential (clients send the same few again and again)."""
        key = None if cred is None else (cred.uid, cred.gid, cred.gids)
        known = self._callers.get(key)
        if known is not None:
            return known
        if cred is None or self.squash == "all" or (cred.uid == 0 and self.squash == "root"):
            found = Caller(self.anonuid, self.anongid)
        else:
            found = Caller(cred.uid, cred.gid, cred.gids)
        if len(self._callers) >= 4096:
            self._callers.clear()
        self._callers[key] = found
        return found


@dataclass(frozen=True)
class Export:
    id: int
    path: str
    rules: tuple[Rule, ...]
    # host -> its rule (or None), so a client's address is parsed once, not per call
    _by_host: dict[str, Rule | None] = field(default_factory=dict, compare=False, repr=False)

    def rule_for(self, host: str) -> Rule | None:
        """The first rule that matches the client, or None (not exported to it). O(1) after a host's first call."""
        try:
            return self._by_host[host]
        except KeyError:
            pass
        found = next((rule for rule in self.rules if rule.matches(host)), None)
        if len(self._by_host) > 4096:
            self._by_host.clear()
        self._by_host[host] = found
        return found


def _rule(spec: str) -> Rule:
    client, _, rest = spec.partition("(")
    if rest and not rest.endswith(")"):
        raise errors.Invalid(f"nfs_exports: unclosed options in {spec!r}")
    network: Network | None = None
    if client not in ("*", ""):
        try:
            network = ipaddress.ip_network(client, strict=False)
        except ValueError:
            raise errors.Invalid(f"nfs_exports: not an address or network: {client!r}") from None
    rw, squash, anonuid, anongid = False, "root", NOBODY, NOBODY
    for opt in filter(None, rest[:-1].split(",")):
        key, _, value = opt.strip().partition("=")
        if key in ("rw", "ro"):
            rw = key == "rw"
        elif key in ("root_squash", "no_root_squash", "all_squash"):
            squash = {"root_squash": "root", "no_root_squash": "none", "all_squash": "all"}[key]
        elif key in ("anonuid", "anongid") and value.isdigit():
            if key == "anonuid":
                anonuid = int(value)
            else:
                anongid = int(value)
        else:
            raise errors.Invalid(f"nfs_exports: unknown option {opt!r}")
    return Rule(network, rw, squash, anonuid, anongid)


def parse_exports(text: str) -> list[Export]:
    """Parse the setting; Invalid with a reason if anything is off. Ids are 1, 2, ..."""
    exports: list[Export] = []
    for entry in text.replace("\n", ";").split(";"):
        fields = entry.split()
        if not fields:
            continue
        path = "/" + "/".join(split_path(fields[0]))
        if any(e.path == path for e in exports):
            raise errors.Invalid(f"nfs_exports: {path} is exported twice")
        if len(fields) < 2:
            raise errors.Invalid(f"nfs_exports: {path} names no clients")
        exports.append(Export(len(exports) + 1, path, tuple(_rule(f) for f in fields[1:])))
    if len(exports) > 255:
        raise errors.Invalid("nfs_exports: at most 255 exports")
    return exports
