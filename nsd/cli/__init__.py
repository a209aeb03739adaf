"""The `nsd` command: the daemon, offline data-dir tools, and a client of the admin API."""

from nsd.cli import backup, cache, fs, mounts, offline, report, users  # noqa: F401  (each module registers its commands)
from nsd.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
