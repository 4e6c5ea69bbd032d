"""Errors that are the user's to fix: the CLI prints them as `raysweep: error: ...` and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (sweep file, model, dataset, flag): reported without a traceback, exit code 2."""


class ConfigError(UserError):
    """A sweep file (or --set override) that does not fit the schema."""


class UnknownModelError(UserError):
    """A model name that is not in the registry, or kwargs the model does not take."""


class DatasetError(UserError):
    """A dataset that cannot be found, read or downloaded."""
