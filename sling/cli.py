"""How every stage runs from the command line: logging set up, and a user's mistake reported as one clear line.

Errors that name what to fix (a bad config value or override, a missing or unreadable input, a benchmark that leaks,
a teacher without its key or a server that does not answer; see `USER_ERRORS`) end the stage with one line on
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


def one_line(e: BaseException) -> str:
    """The error's message on one line; a missing file's says what to do about it. (Hydra's and OmegaConf's errors
    never reach here: sling.config.compose turns each into a ConfigError naming the key.)"""
    text = str(e)
    if isinstance(e, FileNotFoundError) and e.filename and text.startswith("[Errno"):  # the OS's own wording
        text = (f"{e.filename} is missing: run the stage that writes it first (dvc.yaml lists each stage's outputs), "
                "or fix the path in the config")
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def run(main: Callable[[list[str]], None]) -> None:
    """Run a stage's `main` on the command line's arguments; a user's mistake ends it with one line on stderr,
    `error: <message>`, and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        main(sys.argv[1:])
    except Exception as e:
        if not isinstance(e, USER_ERRORS) or os.environ.get("SLING_TRACEBACK"):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        sys.exit(1)
