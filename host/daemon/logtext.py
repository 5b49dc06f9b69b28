"""Log lines that text from outside cannot forge or garble.

Project names, prompts, tags and paths arrive from the network and from files; a newline in one
would start a fake log line, an ESC would drive the terminal. The daemon's formatter escapes
every control character in the message (``\\n``, ``\\x1b``, ...), so one log call is one line,
and indents tracebacks so none of their lines can pass for a log line either.
"""

from __future__ import annotations

import logging
import re

# C0 controls, DEL, C1 controls, and Unicode's own line and paragraph separators
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape; idempotent."""
    return _CONTROLS.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"), text)


class OneLineFormatter(logging.Formatter):
    """A formatter whose message part is always a single line of printable text."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        raw = record.message
        record.message = escape_controls(raw)
        try:
            return super().formatMessage(record)
        finally:
            record.message = raw

    def formatException(self, ei) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("    | " + escape_controls(line) for line in text.splitlines())
