"""How the `raysweep` command line shows what goes wrong: the click group whose parsing and
commands turn click's and Python's exceptions into raysweep's errors.

A bad command line prints its usage line and `raysweep: error: ...` (exit 2), a `UserError`
`raysweep: error: ...` (exit 2; its traceback first under `--debug`), Ctrl-C
`raysweep: interrupted` (exit 130). click's standalone mode prints them and exits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, ClassVar

import click

from raysweep.errors import UserError


class CommandLineError(click.UsageError):
    """A bad command line (unknown flag, missing argument, bad value): the usage line, then
    `raysweep: error: ...`; exit 2."""

    def show(self, file: IO[Any] | None = None) -> None:
        """The command's usage line (when known) and one error line, on stderr."""
        if self.ctx is not None:
            click.echo(self.ctx.get_usage(), file=file, err=True)
        click.echo(f"raysweep: error: {self.format_message()}", file=file, err=True)


class Interrupted(click.ClickException):
    """Ctrl-C while a command ran: `raysweep: interrupted`, exit 130."""

    exit_code: ClassVar[int] = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

    def __init__(self) -> None:
        super().__init__("interrupted")

    def show(self, file: IO[Any] | None = None) -> None:
        """A blank line (ending the terminal's `^C`), then `raysweep: interrupted`."""
        click.echo(file=file, err=True)
        click.echo(f"raysweep: {self.format_message()}", file=file, err=True)


@contextmanager
def raysweep_errors(debug: bool) -> Iterator[None]:
    """Turn what click and Python raise into the errors above; a `UserError` gets its
    traceback shown under `--debug`."""
    try:
        yield
    except (click.exceptions.NoArgsIsHelpError, CommandLineError):
        raise  # already ours, or no arguments: click prints the help (stderr, exit 2)
    except click.UsageError as exc:
        raise CommandLineError(exc.format_message(), exc.ctx) from None
    except UserError as exc:
        exc.show_traceback = debug
        raise
    except (KeyboardInterrupt, click.Abort):  # not EOFError: a truncated file raises it too
        raise Interrupted() from None


def debug_flag(ctx: click.Context) -> bool:
    """Whether `raysweep --debug` was given."""
    return bool(ctx.find_root().params.get("debug"))


class RaysweepGroup(click.Group):
    """The `raysweep` group: click's own, but errors (parsing its options, or anything its
    commands raise) reach click's standalone handling as raysweep's errors."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse `raysweep [OPTIONS]` (a bad option is a `CommandLineError`)."""
        with raysweep_errors(debug=False):
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command (parsing its own flags first)."""
        with raysweep_errors(debug=debug_flag(ctx)):
            return super().invoke(ctx)
