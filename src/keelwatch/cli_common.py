"""What every CLI command shares: consoles, the --data and --server options, failing clearly."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console

from keelwatch.errors import KeelwatchError

if TYPE_CHECKING:
    from keelwatch.readers import Reader

console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DATA = Path("./data")


def data_option(function: F) -> F:
    return click.option(
        "--data",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA,
        show_default=True,
        envvar="KEELWATCH_DATA",
        help="Data directory (DuckDB file, tokens).",
    )(function)


def server_options(function: F) -> F:
    function = click.option(
        "--token",
        envvar="KEELWATCH_TOKEN",
        help="API token for --server (or set KEELWATCH_TOKEN).",
    )(function)
    return click.option(
        "--server",
        envvar="KEELWATCH_SERVER",
        metavar="URL",
        help="Use a running server's API instead of opening the data directory.",
    )(function)


def fail(error: Exception) -> NoReturn:
    errors.print(f"[bold red]error:[/] {error}")
    sys.exit(2)


@contextlib.contextmanager
def reading(data: Path, server: str | None, token: str | None) -> Iterator[Reader]:
    """The reader for --data or --server, closed afterwards; a Keelwatch error while opening
    or reading ends the command with a clear message."""
    from keelwatch.readers import open_reader

    try:
        reader = open_reader(data, server, token)
        try:
            yield reader
        finally:
            reader.close()
    except KeelwatchError as error:
        fail(error)
