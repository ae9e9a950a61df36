"""One log line per fact: time, level, logger, message, then the structured fields."""

from __future__ import annotations

import logging
import re

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if fields:
            line += " " + " ".join(f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}"
                                   for k, v in fields.items())
        return line


# An API key wherever it shows: the `token` query parameter of the event feed (browsers cannot
# send headers there, and uvicorn logs a WebSocket's path with its query), or a key itself.
_SECRETS = re.compile(r"(?<=[?&]token=)[^&\s\"']+|ccc_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}")


class MaskSecrets(logging.Filter):
    """Masks API keys in a record's message before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = _SECRETS.sub("***", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs would carry API paths only; keys travel in headers and are never logged.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
