"""Logging filters for settings.LOGGING."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied


class ExpectedDenialFilter(logging.Filter):
    """django.request logs every PermissionDenied ("Forbidden (Permission denied): /path") as a warning with its
    traceback. An annotator opening a staff page is expected, not an error: keep it as one INFO line without the
    traceback, shown only when the logger is set to INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        exception = record.exc_info[1] if record.exc_info else None
        if not isinstance(exception, PermissionDenied):
            return True
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        if str(exception):
            record.msg = f"{record.msg} (%s)"
            record.args = (*record.args, str(exception)) if isinstance(record.args, tuple) else record.args
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)
