"""Keep the bot token out of every log line.

The Bot API puts the token in the URL path (https://api.telegram.org/bot<token>/getMe), and
httpx logs every request URL; python-telegram-bot's InvalidToken message quotes the token too.
Redacting at record creation (a LogRecord factory) covers every handler and formatter,
including ones installed later, such as pytest's log capture.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

REDACTED = "<bot-token>"
_secrets: set[str] = set()
_base_factory: Callable[..., logging.LogRecord] | None = None


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _factory(*args, **kwargs) -> logging.LogRecord:
    assert _base_factory is not None  # installed by protect() before this factory
    record = _base_factory(*args, **kwargs)
    if not _secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a malformed log call: leave it to the logging module to report
        return record
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = redact(formatted)
        if clean != formatted:  # formatters reuse exc_text instead of formatting exc_info again
            record.exc_text = clean
            record.exc_info = None
    return record


def protect(token: str) -> None:
    """Redact `token` from all log records from now on and quieten httpx's per-request lines."""
    global _base_factory
    if not token:
        return
    _secrets.add(token)
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_factory)
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
