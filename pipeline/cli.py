"""How every stage runs from the command line: logging set up, and a user's mistake reported as one clear line.

Errors that name what to fix (a bad config value, a missing or unreadable input, a benchmark that leaks, a teacher
without its key; see `USER_ERRORS`) end the stage with `error: <message>` and exit status 1, no traceback; anything
else is a bug and keeps its traceback. `SLING_TRACEBACK=1` shows the traceback of every error.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from pipeline.config import UserError

USER_ERRORS = (UserError, FileNotFoundError)


def run(main: Callable[[list[str]], None]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        main(sys.argv[1:])
    except USER_ERRORS as e:
        if os.environ.get("SLING_TRACEBACK"):
            raise
        sys.exit(f"error: {e}")
