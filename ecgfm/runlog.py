"""Logging for workflow scripts: everything (including tracebacks) goes to the rule's log file."""
from __future__ import annotations

import logging
import sys


def log_to(path: str | None) -> logging.Logger:
    """Send logging and stderr to ``path`` (the rule's ``log:``), and return the root logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        stream = open(path, "a", buffering=1)
        sys.stderr = stream
        handlers = [logging.StreamHandler(stream)]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger()
