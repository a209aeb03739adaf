"""Who a WebHDFS request acts as: authentication, then impersonation (`doas`).

Authentication (`webhdfs_auth`):
- `simple` (the default): `user.name` is believed, exactly as Hadoop's pseudo authentication;
  no `user.name` is Hadoop's anonymous `dr.who`, acting as the machine's nobody.
- `token`: `Authorization: Bearer TOKEN`, tokens from `webhdfs_token_file` ("USER TOKEN" lines).
  A missing or unknown token is 401 (the only 401 WebHDFS gives: permissions are 403);
  `user.name` is then ignored, the token decides. Tokens are compared in constant time and
  never logged or shown (only the user they belong to is).

Names become ids through the one user map (nsd.core.users). A user nobody knows (not configured, not
in passwd, not a number) is mapped to a new id of `auto_id_range`, as HDFS believes any name
(`unknown_users = map`), or refused with 403 AccessControlException "Unknown user" (`refuse`).
A `doas` target is mapped only once the impersonation is allowed.

Impersonation: `doas=OTHER` acts as OTHER if the real user is a superuser (who may do anything
anyway), or a proxy user (`webhdfs_proxy_users`, as hadoop.proxyuser.NAME.hosts/users/groups)
whose rule admits the client's address and OTHER (by name, or by one of OTHER's groups).
"""

from __future__ import annotations

import hmac
import ipaddress
import stat as st
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nsd import errors
from nsd.core.users import NOBODY, Caller, UserMap
from nsd.protocols.nfs3.exports import Network, host_in

ANONYMOUS = "dr.who"  # Hadoop's name for a caller that sent no user.name
MODES = ("simple", "token")


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    caller: Caller


class Unauthenticated(errors.NsdError):
    """No valid credentials: 401 with a WWW-Authenticate challenge."""

    errno = 13


@dataclass(frozen=True)
class ProxyRule:
    hosts: tuple[Network, ...] | None  # None: any host
    users: frozenset[str] | None  # None: anyone
    groups: frozenset[str] | None  # None: any group; empty with empty users: nobody

    def admits_host(self, host: str) -> bool:
        return self.hosts is None or host_in(host, self.hosts)


def parse_proxy_users(text: str) -> dict[str, ProxyRule]:
    """`NAME hosts=H,... [users=U,...] [groups=G,...]` entries separated by ";"; `*` is any."""
    rules: dict[str, ProxyRule] = {}
    for entry in text.replace("\n", ";").split(";"):
        fields = entry.split()
        if not fields:
            continue
        name, opts = fields[0], dict(f.partition("=")[::2] for f in fields[1:])
        unknown = set(opts) - {"hosts", "users", "groups"}
        if "=" in name or unknown:
            raise errors.Invalid(f"webhdfs_proxy_users: expected NAME hosts=... users=... groups=..., got {entry!r}")
        if "hosts" not in opts:
            raise errors.Invalid(f"webhdfs_proxy_users: {name} needs hosts=ADDR,... or hosts=*")
        rules[name] = ProxyRule(_hosts(name, opts["hosts"]), _names(opts.get("users")), _names(opts.get("groups")))
    return rules


def _hosts(name: str, raw: str) -> tuple[Network, ...] | None:
    if raw.strip() == "*":
        return None
    try:
        return tuple(ipaddress.ip_network(h.strip(), strict=False) for h in raw.split(",") if h.strip())
    except ValueError:
        raise errors.Invalid(f"webhdfs_proxy_users: {name}: hosts must be addresses or networks: {raw!r}") from None


def _names(raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return frozenset()
    if raw.strip() == "*":
        return None
    return frozenset(n.strip() for n in raw.split(",") if n.strip())


def load_tokens(path: str | Path) -> dict[str, str]:
    """token -> user name from a "USER TOKEN" file, which must not be readable by others than
    its owner (mode 0600 or stricter). Invalid, without echoing any token, otherwise."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text()
    except OSError as e:
        raise errors.Invalid(f"webhdfs_token_file {p}: {e.strerror or e}") from None
    if mode & 0o077:
        raise errors.Invalid(f"webhdfs_token_file {p} is mode {st.S_IMODE(mode):04o}: run chmod 600 {p}")
    tokens: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or len(fields[1]) < 16:
            raise errors.Invalid(f"webhdfs_token_file {p} line {n}: expected 'USER TOKEN' with a token of 16+ chars")
        tokens[fields[1]] = fields[0]
    return tokens


class Authenticator:
    def __init__(
        self,
        users: UserMap,
        is_super: Callable[[Caller], bool],
        *,
        mode: str = "simple",
        tokens: Mapping[str, str] | None = None,
        proxy_users: Mapping[str, ProxyRule] | None = None,
    ) -> None:
        if mode not in MODES:
            raise errors.Invalid(f"webhdfs_auth must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "token" and not tokens:
            raise errors.Invalid("webhdfs_auth = token needs webhdfs_token_file with at least one token")
        self.users = users
        self.is_super = is_super
        self.mode = mode
        self._tokens = [(t.encode(), user) for t, user in (tokens or {}).items()]
        self.proxy_users = dict(proxy_users or {})

    async def identify(self, authorization: str | None, user: str | None, doas: str | None, host: str) -> Identity:
        """The identity a request acts as. Unauthenticated (401) or Denied (403) otherwise."""
        real = await self._authenticate(authorization, user)
        if not doas or doas == real.name:
            return real
        if not self.is_super(real.caller):
            rule = self.proxy_users.get(real.name)
            if rule is None or not self._may_impersonate(rule, doas):
                raise errors.Denied(f"User: {real.name} is not allowed to impersonate {doas}")
            if not rule.admits_host(host):
                raise errors.Denied(f"Unauthorized connection for super-user: {real.name} from IP {host}")
        return await self.lookup(doas)

    async def _authenticate(self, authorization: str | None, user: str | None) -> Identity:
        if self.mode == "simple":
            return await self.lookup(user) if user else self.anonymous()
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthenticated("Authentication required: send Authorization: Bearer <token>")
        given_bytes = given.strip().encode()
        found = None
        for token, name in self._tokens:  # every token compared, so the time says nothing
            if hmac.compare_digest(token, given_bytes):
                found = name
        if found is None:
            raise Unauthenticated("Authentication failed: unknown token")
        return await self.lookup(found)

    async def lookup(self, name: str) -> Identity:
        found = await self.users.resolve(name)
        return Identity(found.name, found.caller)

    def anonymous(self) -> Identity:
        nobody = self.users.user("nobody")
        return Identity(ANONYMOUS, nobody.caller if nobody is not None else Caller(NOBODY, NOBODY))

    def _may_impersonate(self, rule: ProxyRule, target: str) -> bool:
        if rule.users is None or target in rule.users:
            return True
        if rule.groups is None:
            return True
        known = self.users.user(target)
        if known is None:  # not mapped yet: its only group will be the same-named one
            return target in rule.groups
        names = {self.users.group_name(g) for g in (known.caller.gid, *known.caller.gids)}
        return not rule.groups.isdisjoint(names)
