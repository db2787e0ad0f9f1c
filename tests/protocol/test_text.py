"""hub.protocol.text: the characters a name may not hold, and the one-line escape of text from
the network (docs/security.md, finding 8)."""

from __future__ import annotations

import io
import logging
import unicodedata

import pytest

from hub.protocol import text
from hub.protocol.errors import SchemaError

BIDI = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
REFUSED = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"}
REFUSED |= {"\u2028", "\u2029"} | {chr(c) for c in BIDI}


def test_the_refused_set_is_exactly_the_documented_one() -> None:
    found = {chr(c) for c in range(0x110000) if text.REFUSED.fullmatch(chr(c))}
    assert found == REFUSED
    assert len(found) == 65 + 2 + 11


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Meja 7", "Meja 7"),
        ("Méja 7 — Ruang B 桌", "Méja 7 — Ruang B 桌"),
        ("a\nb", "a\\nb"),
        ("\rMeja 1", "\\rMeja 1"),
        ("\t", "\\t"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x7f\x85\x9f", "\\x00\\x7f\\x85\\x9f"),
        ("a\u2028b\u2029", "a\\u2028b\\u2029"),
        ("Meja \u202e7 ajeM", "Meja \\u202e7 ajeM"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("\\n stays", "\\n stays"),
    ],
)
def test_escape(raw: str, shown: str) -> None:
    assert text.escape(raw) == shown


def test_escaped_text_holds_no_refused_character_and_no_line_break() -> None:
    every = "".join(sorted(REFUSED)) + "x"
    out = text.escape(every)
    assert text.refused_at(out) == -1
    assert out.splitlines() == [out]  # str.splitlines breaks on \x1c-\x1e, \x85, \u2028 too
    assert out.isprintable()


def test_check_name() -> None:
    assert text.check_name("Meja 7") == "Meja 7"
    assert text.check_name("x" * 120) == "x" * 120
    for bad in ("x" * 121, b"Meja", "Meja\n7", "Meja\u202e7"):
        with pytest.raises(SchemaError) as err:
            text.check_name(bad)
        assert (err.value.code, err.value.field) == ("bad_entry", "name")
    with pytest.raises(SchemaError) as err:
        text.check_name("ab\x1bc", field="operator", max_len=10)
    assert err.value.field == "operator"
    assert "U+001B at position 3" in err.value.message
    assert "U+001B" in err.value.pesan
    assert text.refused_at("ab\x1bc") == 2
    assert text.refused_at("abc") == -1


def test_one_line_formatter() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(text.OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tests.protocol.text")
    log.addHandler(handler)
    log.propagate = False
    try:
        forged = "2026-02-14 08:00:00 WARNING hub.node: approved device AAAA"
        log.warning("refused hub at %s: %s", "http://x", "boom\n" + forged + "\x1b[31m")
        try:
            raise ValueError("bad\x1b[2J\rvalue")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "WARNING tests.protocol.text: refused hub at http://x: boom\\n" + forged + "\\x1b[31m"
    )
    assert not any(line.startswith(forged) for line in lines)
    assert lines[1] == "ERROR tests.protocol.text: failed"
    assert lines[2].startswith("Traceback")
    assert lines[-1] == "ValueError: bad\\x1b[2J\\rvalue"
    assert all(text.refused_at(line) == -1 for line in lines)
