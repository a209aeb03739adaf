"""The Typer application, its global options and the error-to-exit-code convention.

Exit codes: 0 success, 1 the operation failed (one line on stderr says why), 2 bad usage,
3 the daemon could not be reached.
"""

from __future__ import annotations

import functools
import http.client
from typing import Annotated, Any, NoReturn

import typer

from nsd.cli.client import ApiError, Client, find_token
from nsd.errors import NsdError

app = typer.Typer(no_args_is_help=True, add_completion=True, help="nsd: one namespace over many under-storages.")
journal_app = typer.Typer(
    no_args_is_help=True,
    help="Journal tools: backup asks the running daemon; dump, verify, checkpoint, repair and restore "
    "work on a stopped daemon's data dir.",
)
app.add_typer(journal_app, name="journal")
mount_app = typer.Typer(no_args_is_help=True, help="Mount under-storage systems into the namespace.")
app.add_typer(mount_app, name="mount")
fs_app = typer.Typer(no_args_is_help=True, help="File-system commands (the short forms `nsd ls` etc. are aliases).")
app.add_typer(fs_app, name="fs")
conf_app = typer.Typer(no_args_is_help=True, help="The running daemon's configuration.")
app.add_typer(conf_app, name="conf")

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

ServerOpt = Annotated[str, typer.Option("--server", envvar="NSD_SERVER", help="Admin API URL.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="NSD_TOKEN", help="Admin token.")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", envvar="NSD_DATA_DIR", help="Data dir.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class Globals:
    server = "http://127.0.0.1:9870"
    token: str | None = None
    data_dir: str | None = None

    def client(self) -> Client:
        token, where = find_token(self.token, self.data_dir)
        return Client(self.server, token, token_from=where)


G = Globals()


def installed_version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    from nsd import __version__

    try:
        return version("nsd")
    except PackageNotFoundError:
        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"nsd {installed_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    server: ServerOpt = "http://127.0.0.1:9870",
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print nsd's version and exit."),
    ] = False,
) -> None:
    G.server, G.token, G.data_dir = server, token, data_dir


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"nsd: {message}", err=True)
    raise typer.Exit(code)


def api_errors(fn: Any) -> Any:
    """Turn daemon errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as e:
            # 400: the daemon found the arguments malformed, a usage error like any other
            fail(str(e), EXIT_USAGE if e.status == 400 else EXIT_FAILED if e.status else EXIT_UNREACHABLE)
        except NsdError as e:
            fail(e.message)
        except (ConnectionError, http.client.HTTPException) as e:  # a streamed body broke off mid-way
            fail(f"the connection to nsd broke: {e!r}", EXIT_UNREACHABLE)

    return wrapper


def emit(as_json: bool, value: Any, human: str | None = None) -> None:
    """Print `value` as JSON with --json, else `human` (None: print nothing, as mkdir(1) does)."""
    if as_json:
        import json

        typer.echo(json.dumps(value))
    elif human is not None:
        typer.echo(human)


def human_bytes(n: float) -> str:
    """Bytes in binary units (B, KiB, MiB, ...): one style for every CLI output."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
