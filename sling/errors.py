"""The one error contract: what a user can fix, as opposed to a bug.

Every stage runs through `sling.cli.run`, which prints a `UserError` (and a missing file, or an override Hydra cannot
apply) as one line, `error: <message>`, and exits with status 1, without a traceback; anything else is a bug and keeps
its traceback. A message names the file or the config key and says what to do about it.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or settings, not in the code: its message says what to fix. A stage run from
    the command line reports it in one line, without a traceback (sling.cli)."""


class InputError(UserError, ValueError):
    """An input file (documents, question or instruction files, a stage's data) cannot be used as it is; the
    message names the file and what is wrong with it."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message names the key and how to fix it."""
