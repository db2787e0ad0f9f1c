"""Text from another machine: which characters a name may not hold, and how any such text is
shown on a terminal or written to a log (issue 8, finding 8; docs/security.md).

Names (of devices and hubs) travel in enrollment requests and endorsements and are then shown
in device lists, prompts and logs. A carriage return can overwrite a terminal row, a line feed
can forge a log line, an escape sequence drives the terminal, and a bidi control reverses what
a person reads. So:

- ``check_name`` refuses a name holding any ``REFUSED`` character (``SchemaError``, code
  ``bad_entry``, field ``name``): Unicode category Cc (U+0000-U+001F, U+007F-U+009F), the line
  and paragraph separators U+2028 and U+2029, and the bidi controls U+200E, U+200F,
  U+202A-U+202E and U+2066-U+2069.
- ``escape`` writes each of those characters as a visible escape (``\\n``, ``\\x1b``,
  ``\\u202e``), so text from the network, shown or logged, stays on its one line and reads
  as it is. ``OneLineFormatter`` applies it to every log record.

Entry fields keep their own rules (``hub.protocol.entry``; docs/entry-format.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .errors import SchemaError

MAX_NAME = 120

# One character class, used both to refuse and to escape.
_REFUSED_CLASS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
REFUSED = re.compile(f"[{_REFUSED_CLASS}]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def escape(text: str) -> str:
    """``text`` with every refused character written as a visible escape (``\\n``, ``\\x1b``,
    ``\\x85``, ``\\u202e``); other text is unchanged."""
    if REFUSED.search(text) is None:
        return text
    return REFUSED.sub(lambda m: _escaped(m.group()), text)


def refused_at(text: str) -> int:
    """The index of the first refused character in ``text``, or -1 if there is none."""
    m = REFUSED.search(text)
    return -1 if m is None else m.start()


def check_name(value: object, *, field: str = "name", max_len: int = MAX_NAME) -> str:
    """``value`` if it is a usable name: text of at most ``max_len`` characters with no refused
    character. Otherwise ``SchemaError`` (``bad_entry``, ``field``), whose message never
    repeats the name itself, only the position and code point of what was refused."""
    if type(value) is not str or len(value) > max_len:
        raise SchemaError(
            f"{field} must be text of at most {max_len} characters",
            field=field,
            pesan=f"{field} harus berupa teks paling banyak {max_len} karakter",
        )
    at = refused_at(value)
    if at >= 0:
        point = f"U+{ord(value[at]):04X}"
        raise SchemaError(
            f"{field} holds a control, line-break or bidi character ({point} at position "
            f"{at + 1}); use letters, digits, spaces and punctuation only",
            field=field,
            pesan=f"{field} memuat karakter kendali, pemisah baris atau bidi ({point} pada "
            f"posisi {at + 1}); pakai huruf, angka, spasi dan tanda baca saja",
        )
    return value


class OneLineFormatter(logging.Formatter):
    """A log formatter for which one record is one line: the message (with its arguments,
    which may hold text from the network) is escaped. A traceback keeps its line breaks but
    loses every other refused character."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join(escape(line) for line in text.split("\n"))
