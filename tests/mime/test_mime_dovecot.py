"""Letterbox's FETCH data for the corpus, compared with Dovecot 2.3.19's answers.

The fixture is produced by ``make_dovecot_fixtures.py``. Every difference
from Dovecot is listed below with the reason it is deliberate.
"""

from __future__ import annotations

import hashlib

import pytest

from letterbox.mime import parse_message
from letterbox.mime.headers import get_header_fields, get_header_fields_not
from letterbox.mime.sections import find_section, load_parts

from .make_dovecot_fixtures import HEADER_FIELDS, HEADER_FIELDS_NOT, section_names
from .mimeutil import corpus, corpus_names, fixture, wire

# (message, item) -> (Dovecot's bytes, ours, reason). The item must equal
# Dovecot's answer once that one substitution is made.
KNOWN_DIFFERENCES: dict[tuple[str, str], tuple[bytes, bytes, str]] = {
    ("26-mime-params-edge.eml", "bodystructure"): (
        b'"enc*1*"',
        b'"enc*"',
        "RFC 2231: 'enc*=' is an unnumbered extended parameter; Dovecot 2.3 "
        "reuses the index of the previous numbered parameter (title*1) for it",
    ),
    ("26-mime-params-edge.eml", "body"): (
        b'"enc*1*"',
        b'"enc*"',
        "same RFC 2231 parameter as in BODYSTRUCTURE",
    ),
}

# Sections Dovecot answers that RFC 3501 6.4.5 says do not exist: it treats
# "<leaf>.1" as the leaf itself (and "<leaf>.1.MIME" as its MIME header).
# We answer None for them; the test checks Dovecot's answer is exactly the
# leaf's, so nothing else hides behind this allowance.


def _digest(data: bytes) -> str:
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()}"


def _split_section(name: str) -> tuple[tuple[int, ...], str | None]:
    path: list[int] = []
    rest = name
    while rest and rest[0].isdigit():
        num, _, rest = rest.partition(".")
        path.append(int(num))
    return tuple(path), (rest or None)


def test_fixture_covers_corpus() -> None:
    assert sorted(fixture()["messages"]) == corpus_names()
    assert fixture()["dovecot_version"].startswith("2.3.")


@pytest.mark.parametrize("name", corpus_names())
@pytest.mark.parametrize("item", ["envelope", "bodystructure", "body"])
def test_same_as_dovecot(name: str, item: str) -> None:
    expected = fixture()["messages"][name][item].encode("latin-1")
    parsed = parse_message(corpus(name))
    ours = getattr(parsed, item)
    known = KNOWN_DIFFERENCES.get((name, item))
    if known is not None:
        theirs, mine, _reason = known
        assert ours != expected, "listed difference is gone: drop it from KNOWN_DIFFERENCES"
        expected = expected.replace(theirs, mine)
    assert ours == expected


@pytest.mark.parametrize("name", corpus_names())
def test_sections_same_as_dovecot(name: str) -> None:
    raw = corpus(name)
    parsed = parse_message(raw)
    tree = load_parts(parsed.parts)
    answers: dict[str, str] = fixture()["messages"][name]["sections"]
    for section in section_names():
        theirs = answers.get(section)
        if section in (HEADER_FIELDS, HEADER_FIELDS_NOT):
            rng = find_section(tree, (), "HEADER")
            assert rng is not None
            pick = get_header_fields if section == HEADER_FIELDS else get_header_fields_not
            ours = pick(raw[rng[0] : rng[1]], [b"from", b"to", b"subject", b"content-type"])
            header = raw[rng[0] : rng[1]]
            no_blank_line = not (header.endswith(b"\n\n") or header.endswith(b"\n\r\n"))
            if no_blank_line and header not in (b"\n", b"\r\n") and section == HEADER_FIELDS:
                # RFC 3501 6.4.5: no blank line for a message with no body and
                # no blank line; Dovecot adds one to HEADER.FIELDS (but not to
                # HEADER.FIELDS.NOT)
                assert theirs == _digest(wire(ours) + b"\r\n")
                continue
            assert _digest(wire(ours)) == theirs if ours else theirs is None, section
            continue
        path, spec = _split_section(section)
        rng = find_section(tree, path, spec)
        if rng is None:
            assert theirs is None, section
            continue
        data = wire(raw[rng[0] : rng[1]])
        if data:
            assert _digest(data) == theirs, section
        else:
            assert theirs is None, section
