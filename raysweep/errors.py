"""Errors that are the user's to fix: the CLI prints them as `raysweep: error: ...` and exits 2.

`UserError` is a `click.ClickException`, so click's own error handling shows it (`show`) and
exits with its `exit_code`; library code raises it without knowing about the command line.
"""

from __future__ import annotations

import sys
import traceback
from typing import IO, Any, ClassVar

import click


class UserError(click.ClickException):
    """Bad input (sweep file, model, dataset, flag): reported without a traceback, exit code 2."""

    exit_code: ClassVar[int] = 2
    #: Print the traceback above the message (`raysweep --debug`); the CLI sets it.
    show_traceback: bool = False

    def show(self, file: IO[Any] | None = None) -> None:
        """One line, `raysweep: error: <message>`, on stderr (after the traceback if asked)."""
        if self.show_traceback:
            traceback.print_exception(self, file=file or sys.stderr)
        click.echo(f"raysweep: error: {self}", file=file, err=True)


class ConfigError(UserError):
    """A sweep file (or --set override) that does not fit the schema."""


class UnknownModelError(UserError):
    """A model name that is not in the registry, or kwargs the model does not take."""


class DatasetError(UserError):
    """A dataset that cannot be found, read or downloaded."""
