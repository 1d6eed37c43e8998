"""Record Dovecot's ENVELOPE / BODYSTRUCTURE / BODY for every corpus message.

Usage (from the repository root, with dovecot-imapd installed):

    python tests/mime/make_dovecot_fixtures.py

The script never touches the system Dovecot configuration: it writes a
standalone config into a temporary directory, puts each corpus message alone
into a fresh Maildir and runs Dovecot's ``imap`` binary in PREAUTH mode over
stdin/stdout. The answers are saved to ``tests/mime/fixtures/dovecot.json``
with every byte preserved (strings are the raw bytes decoded as latin-1).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FIXTURE = HERE / "fixtures" / "dovecot.json"
IMAP_BIN = Path("/usr/lib/dovecot/imap")
DOVECOT_BIN = Path("/usr/sbin/dovecot")
ITEMS = ("ENVELOPE", "BODYSTRUCTURE", "BODY")

# the FETCH is done when its tagged reply is the last line received
_TAGGED_DONE = re.compile(rb"\r\nb (?:OK|NO|BAD)[^\r\n]*\r\n$")
_TAGGED_OK = re.compile(rb"\r\nb OK[^\r\n]*\r\n")

# Dovecot refuses to give mail access to root; drop to nobody when run as root.
NOBODY = 65534


def _config(root: Path, uid: int | None) -> str:
    lines = [
        f"base_dir = {root}/run",
        f"state_dir = {root}/state",
        "log_path = /dev/stderr",
        f"mail_location = maildir:{root}/Maildir",
        "ssl = no",
        "protocols = imap",
        "first_valid_uid = 1",
        "first_valid_gid = 1",
    ]
    if uid is not None:
        lines += [f"mail_uid = {uid}", f"mail_gid = {uid}"]
    return "\n".join(lines) + "\n"


def skip_item(data: bytes, pos: int) -> int:
    """End offset of the IMAP item (atom, string, literal or list) at ``pos``."""
    depth = 0
    n = len(data)
    while pos < n:
        c = data[pos]
        if c == 0x28:  # (
            depth += 1
            pos += 1
        elif c == 0x29:  # )
            depth -= 1
            pos += 1
            if depth == 0:
                return pos
        elif c == 0x22:  # "
            pos += 1
            while data[pos] != 0x22:
                pos += 2 if data[pos] == 0x5C else 1
            pos += 1
            if depth == 0:
                return pos
        elif c == 0x7B:  # {n}\r\n literal
            close = data.index(b"}", pos)
            size = int(data[pos + 1 : close])
            pos = close + 3 + size
            if depth == 0:
                return pos
        elif c == 0x20:
            pos += 1
        else:
            start = pos
            while pos < n and data[pos] not in b" ()":
                pos += 1
            if depth == 0:
                return pos if pos > start else pos + 1
    raise ValueError("unterminated IMAP item")


def parse_fetch_items(response: bytes, pos: int) -> tuple[dict[str, bytes], int]:
    """Items of the FETCH response whose list starts after ``(`` at ``pos``."""
    out: dict[str, bytes] = {}
    while response[pos : pos + 1] != b")":
        if response[pos : pos + 1] == b" ":
            pos += 1
            continue
        space = response.index(b" ", pos)
        bracket = response.find(b"[", pos, space)
        if bracket >= 0:
            # BODY[HEADER.FIELDS (A B)] contains spaces inside the brackets
            space = response.index(b" ", response.index(b"]", bracket))
        name = response[pos:space].decode()
        end = skip_item(response, space + 1)
        out[name] = response[space + 1 : end]
        pos = end
    return out, pos + 1


def parse_fetches(response: bytes) -> dict[int, dict[str, bytes]]:
    """All untagged FETCH responses, by sequence number."""
    found: dict[int, dict[str, bytes]] = {}
    pos = 0
    pattern = re.compile(rb"\* (\d+) FETCH \(")
    while (m := pattern.search(response, pos)) is not None:
        items, pos = parse_fetch_items(response, m.end())
        found.setdefault(int(m.group(1)), {}).update(items)
    return found


def dovecot_fetch_many(raws: list[bytes], items: tuple[str, ...] = ITEMS) -> list[dict[str, bytes]]:
    """Put ``raws`` into an empty Maildir (in order) and FETCH ``items`` for each.

    Dovecot assigns UIDs to new Maildir files in file-name order, so the
    sequence numbers follow the list order.
    """
    root = Path(tempfile.mkdtemp(prefix="lb-dovecot-"))
    try:
        uid = NOBODY if os.geteuid() == 0 else None
        maildir = root / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        for i, raw in enumerate(raws):
            name = f"{1000000000 + i}.M{i}P1.letterbox:2,S"
            (maildir / "cur" / name).write_bytes(raw)
        conf = root / "dovecot.conf"
        conf.write_text(_config(root, uid))
        if uid is not None:
            os.chmod(root, 0o755)
            for dirpath, _dirs, files in os.walk(maildir):
                os.chown(dirpath, uid, uid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), uid, uid)
        env = {"USER": "letterbox", "HOME": str(root), "PATH": "/usr/bin:/bin"}
        # LOGOUT goes only after the FETCH completed: Dovecot drops pending
        # output when stdin reaches EOF
        proc = subprocess.Popen(
            [str(IMAP_BIN), "-c", str(conf)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"a SELECT INBOX\r\nb FETCH 1:* (" + " ".join(items).encode() + b")\r\n")
        proc.stdin.flush()
        out = bytearray()
        while not _TAGGED_DONE.search(out):
            chunk = proc.stdout.read1(1 << 16)
            if not chunk:
                break
            out += chunk
        stdout, stderr = proc.communicate(b"c LOGOUT\r\n", timeout=600)
        out += stdout
        if not _TAGGED_OK.search(out):
            raise RuntimeError(f"dovecot imap failed: {bytes(out[-2000:])!r} {stderr[-2000:]!r}")
        fetched = parse_fetches(bytes(out))
        if sorted(fetched) != list(range(1, len(raws) + 1)):
            raise RuntimeError(f"expected {len(raws)} messages, got {sorted(fetched)[:20]}")
        return [fetched[i + 1] for i in range(len(raws))]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dovecot_fetch(raw: bytes, items: tuple[str, ...] = ITEMS) -> dict[str, bytes]:
    return dovecot_fetch_many([raw], items)[0]


def dovecot_version() -> str:
    out = subprocess.run([str(DOVECOT_BIN), "--version"], capture_output=True, timeout=30)
    return out.stdout.decode().strip()


def section_names() -> list[str]:
    """The BODY[...] sections recorded per message: every part number up to
    three levels deep (1-3 at the top, 1-2 below), each with no specifier,
    MIME, HEADER and TEXT, plus the top-level HEADER/TEXT/HEADER.FIELDS."""
    paths = [str(a) for a in (1, 2, 3)]
    paths += [f"{p}.{b}" for p in list(paths) for b in (1, 2)]
    paths += [f"{p}.{c}" for p in paths if p.count(".") == 1 for c in (1, 2)]
    names = ["", "HEADER", "TEXT", HEADER_FIELDS, HEADER_FIELDS_NOT]
    for p in paths:
        names += [p, f"{p}.MIME", f"{p}.HEADER", f"{p}.TEXT"]
    return names


HEADER_FIELDS = "HEADER.FIELDS (FROM TO SUBJECT CONTENT-TYPE)"
HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT (FROM TO SUBJECT CONTENT-TYPE)"


def digest(data: bytes) -> str:
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()}"


def literal_value(item: bytes) -> bytes:
    """The bytes of an IMAP string answer (literal or quoted)."""
    if item.startswith(b"{"):
        return item[item.index(b"\n") + 1 :]
    if item == b"NIL":
        return b""
    return item[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")


def record(path: Path) -> dict[str, object]:
    raw = path.read_bytes()
    sections = section_names()
    items = ITEMS + tuple(f"BODY.PEEK[{name}]" for name in sections)
    fetched = dovecot_fetch(raw, items)
    entry: dict[str, object] = {k.lower(): fetched[k].decode("latin-1") for k in ITEMS}
    answers: dict[str, str] = {}
    for name in sections:
        # Dovecot answers a section that does not exist with an empty string;
        # only the non-empty ones are kept
        value = literal_value(fetched[f"BODY[{name}]"])
        if value:
            answers[name] = digest(value)
    entry["sections"] = answers
    return entry


def main() -> int:
    if not IMAP_BIN.exists():
        print(f"{IMAP_BIN} not found: install dovecot-imapd", file=sys.stderr)
        return 1
    results: dict[str, dict[str, object]] = {}
    for path in sorted(CORPUS.glob("*.eml")):
        results[path.name] = record(path)
        print(f"{path.name}: ok")
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "dovecot_version": dovecot_version(),
        "encoding": "envelope/bodystructure/body are the raw IMAP bytes decoded as latin-1",
        "sections": "non-empty BODY[section] answers as 'length:sha256' of the bytes sent",
        "header_fields": [HEADER_FIELDS, HEADER_FIELDS_NOT],
        "messages": results,
    }
    FIXTURE.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
