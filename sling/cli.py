"""How every stage runs from the command line: logging set up, and a user's mistake reported as one clear line.

Errors that name what to fix (a bad config value or override, a missing or unreadable input, a benchmark that leaks,
a teacher without its key or a server that does not answer; see `is_user_error`) end the stage with one line on
stderr, `error: <message>`, and exit status 1, no traceback; anything else is a bug and keeps its traceback.
`SLING_TRACEBACK=1` shows the traceback of every error.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from sling.errors import UserError

USER_ERRORS = (UserError, FileNotFoundError)


def is_user_error(e: BaseException) -> bool:
    """A mistake the user fixes: a `UserError`, a missing file, or an override Hydra cannot apply (a key conf/ does
    not have, a value of the wrong type, a config group option that does not exist, a malformed override)."""
    if isinstance(e, USER_ERRORS):
        return True
    hydra = sys.modules.get("hydra.errors")  # imported only where a stage composed conf/ with overrides
    return hydra is not None and isinstance(e, (hydra.ConfigCompositionException, hydra.OverrideParseException))


def one_line(e: BaseException) -> str:
    """The error's message on one line: a missing file says what to do about it, Hydra's adds its cause and drops its
    config search path."""
    text = str(e)
    if isinstance(e, FileNotFoundError) and e.filename and text.startswith("[Errno"):  # the OS's own wording
        text = (f"{e.filename} is missing: run the stage that writes it first (dvc.yaml lists each stage's outputs), "
                "or fix the path in the config")
    elif not isinstance(e, USER_ERRORS):  # Hydra's
        text = text.split("Config search path:")[0]
        if e.__cause__ is not None and str(e.__cause__).strip():
            text += f" ({str(e.__cause__).strip().splitlines()[0]})"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def run(main: Callable[[list[str]], None]) -> None:
    """Run a stage's `main` on the command line's arguments; a user's mistake ends it with one line on stderr,
    `error: <message>`, and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        main(sys.argv[1:])
    except Exception as e:
        if not is_user_error(e) or os.environ.get("SLING_TRACEBACK"):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        sys.exit(1)
