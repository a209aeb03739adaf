"""The `nsd` command: the daemon, offline data-dir tools, and a client of the admin API."""

import sys

import typer

from nsd.cli import backup, cache, cluster, fs, mounts, offline, report, users  # noqa: F401  (each module registers its commands)
from nsd.cli.app import EXIT_USAGE, app


def main() -> None:
    """Run the command; a usage error is one line on stderr and exit code 2 (no help box)."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:
        from click import exceptions as click  # type: ignore[no-redef]

    try:
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError:
        sys.exit(EXIT_USAGE)  # a bare `nsd fs`: its help is printed already
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "nsd"
        print(f"nsd: {e.format_message()} (see '{where} --help')", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        print(f"nsd: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("nsd: aborted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
