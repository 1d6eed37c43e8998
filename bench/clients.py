"""Minimal asyncio LMTP, POP3 and IMAP clients and the deterministic message corpus.

The clients do the least work a correct client can: replies are split with the C-level
search of StreamReader.readuntil (one call per multi-line response, not one per line),
so on loopback the server, not the client, sets the pace.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import string

READ_LIMIT = 64 * 1024 * 1024


# --- messages ----------------------------------------------------------------------------


class Corpus:
    """Plain-text messages of chosen sizes, identical for a given seed on every run.

    Bodies are slices of one pseudo-text blob cut at line boundaries; headers make
    every message distinct. No line starts with '.', so no dot-stuffing is needed.
    """

    BLOB_SIZE = 512 * 1024

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = random.Random(seed)
        vocab = [
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 11))) for _ in range(3000)
        ]
        lines: list[bytes] = []
        starts: list[int] = []
        total = 0
        while total < self.BLOB_SIZE:
            words: list[str] = []
            width = rng.randint(40, 76)
            n = 0
            while n < width:
                w = rng.choice(vocab)
                words.append(w)
                n += len(w) + 1
            line = (" ".join(words)).capitalize().encode() + b"\r\n"
            starts.append(total)
            lines.append(line)
            total += len(line)
        self.blob = b"".join(lines)
        self.starts = starts

    def sizes(self, key: str, count: int, low: int, high: int) -> list[int]:
        rng = random.Random(f"{self.seed}:sizes:{key}")
        return [rng.randint(low, high) for _ in range(count)]

    def message(self, key: str, size: int, rcpt: str, subject: str | None = None) -> bytes:
        """About *size* bytes (within one line), CRLF line ends, ending in CRLF."""
        rng = random.Random(f"{self.seed}:msg:{key}")
        if subject is None:
            subject = f"benchmark message {key}"
        header = (
            f"Return-Path: <bench@example.org>\r\n"
            f"From: Bench Sender <bench@example.org>\r\n"
            f"To: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
            f"Message-ID: <{key}.{self.seed}@bench.example.org>\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n"
            f"\r\n"
        ).encode()
        want = max(size - len(header), 1)
        body = b""
        while want > 0:
            # A slice of the blob, repeated when a message is larger than the blob.
            take = min(want, len(self.blob) - 1)
            last = bisect.bisect_right(self.starts, len(self.blob) - take) - 1
            start = self.starts[rng.randint(0, max(last, 0))]
            end_i = bisect.bisect_left(self.starts, start + take)
            end = self.starts[end_i] if end_i < len(self.starts) else len(self.blob)
            body += self.blob[start:end]
            want -= end - start
        return header + body


# --- LMTP --------------------------------------------------------------------------------


class ProtocolError(Exception):
    pass


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (possibly multi-line) SMTP/LMTP reply: code and last line."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3]), line


class LMTPClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> LMTPClient:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
        c = cls(reader, writer)
        code, line = await _reply(reader)
        if code != 220:
            raise ProtocolError(f"greeting: {line!r}")
        await c._command(b"LHLO bench.example.org\r\n", 250)
        return c

    async def _command(self, data: bytes, expect: int) -> bytes:
        self.writer.write(data)
        code, line = await _reply(self.reader)
        if code != expect:
            raise ProtocolError(f"{data[:40]!r} -> {line!r}")
        return line

    async def deliver(self, sender: str, rcpt: str, message: bytes) -> None:
        """One transaction with one recipient; raises ProtocolError if it is refused."""
        await self._command(f"MAIL FROM:<{sender}>\r\n".encode(), 250)
        await self._command(f"RCPT TO:<{rcpt}>\r\n".encode(), 250)
        await self._command(b"DATA\r\n", 354)
        self.writer.write(message)
        await self._command(b".\r\n", 250)

    async def quit(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await _reply(self.reader)
        except (ConnectionError, OSError):
            pass
        self.writer.close()


# --- POP3 --------------------------------------------------------------------------------


class InUse(Exception):
    """The server refused the login because another session holds the mailbox."""


class POP3Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> POP3Client:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
        c = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"+OK"):
            writer.close()
            raise ProtocolError(f"greeting: {greeting!r}")
        return c

    async def _status(self) -> bytes:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        return line

    async def command(self, data: bytes) -> bytes:
        self.writer.write(data)
        line = await self._status()
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"{data.split(b' ')[0]!r} -> {line!r}")
        return line

    async def multiline(self, data: bytes) -> bytes:
        """Send a command answered by +OK and a dot-terminated block; return the block."""
        await self.command(data)
        head = await self.reader.readexactly(3)
        if head == b".\r\n":
            return b""
        if b"\r" in head:
            # A block of one-character lines: rare, so the simple loop will do.
            block = head
            while not block.endswith(b"\r\n.\r\n"):
                block += await self.reader.readline()
            return block[:-3]
        rest = await self.reader.readuntil(b"\r\n.\r\n")
        return head + rest[:-3]

    async def login(self, user: str, password: str) -> None:
        await self.command(f"USER {user}\r\n".encode())
        self.writer.write(f"PASS {password}\r\n".encode())
        line = await self._status()
        if line.startswith(b"-ERR") and b"[IN-USE]" in line:
            raise InUse(line.decode(errors="replace").strip())
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"PASS -> {line!r}")

    async def stat(self) -> tuple[int, int]:
        parts = (await self.command(b"STAT\r\n")).split()
        return int(parts[1]), int(parts[2])

    async def quit(self) -> None:
        try:
            await self.command(b"QUIT\r\n")
        except (ProtocolError, ConnectionError, OSError):
            pass
        self.writer.close()

    def abort(self) -> None:
        self.writer.close()


# --- IMAP --------------------------------------------------------------------------------


class IMAPClient:
    """Tagged commands; the response to one command is read as one block.

    The block up to the tagged line is found with readuntil on the tag, literals
    included, so a 100,000-line FETCH costs the client little. That would misfire only if
    a literal held a line starting with the tag: tags are lowercase ("a17 ") and the
    corpus starts every body line with a capital. Pipelined commands are read with
    responses().
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._n = 0

    @classmethod
    async def connect(cls, host: str, port: int, source: str | None = None) -> IMAPClient:
        """*source*: the local address to connect from (any of 127.0.0.0/8 on loopback)."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT, local_addr=local)
        c = cls(reader, writer)
        greeting = await reader.readuntil(b"\r\n")
        if not greeting.startswith(b"* OK"):
            writer.close()
            raise ProtocolError(f"greeting: {greeting!r}")
        return c

    def send(self, command: bytes) -> bytes:
        """Queue *command* (without tag and CRLF); return its tag."""
        self._n += 1
        tag = b"a%d" % self._n
        self.writer.write(tag + b" " + command + b"\r\n")
        return tag

    async def response(self, tag: bytes) -> bytes:
        """The untagged data before *tag*'s completion; raises unless it is OK."""
        head = tag + b" "
        first = await self.reader.readuntil(b"\r\n")
        if first.startswith(head):
            untagged, last = b"", first[len(head):]
        else:
            block = first
            while True:
                # The tag counts only at the start of a line ("a1 " also ends "xa1 ").
                block += await self.reader.readuntil(head)
                if block[-len(head) - 2 : -len(head)] == b"\r\n":
                    break
            last = await self.reader.readuntil(b"\r\n")
            untagged = block[: -len(head)]
        if not last.startswith(b"OK"):
            raise ProtocolError(f"{tag.decode()} -> {last[:200]!r}")
        return untagged

    async def responses(self, tags: list[bytes]) -> bytes:
        """The untagged data of pipelined commands, read together until every tag has
        completed: the server may interleave them (Dovecot runs commands that do not
        conflict in parallel). Read line by line, literals by their announced size."""
        pending = {tag + b" " for tag in tags}
        chunks: list[bytes] = []
        while pending:
            line = await self.reader.readuntil(b"\r\n")
            head = line[: line.find(b" ") + 1]
            if head in pending:
                if not line[len(head):].startswith(b"OK"):
                    raise ProtocolError(f"{head.decode()}-> {line[:200]!r}")
                pending.discard(head)
                continue
            chunks.append(line)
            while line.endswith(b"}\r\n"):
                size = line[line.rfind(b"{") + 1 : -3].rstrip(b"+")
                if not size.isdigit():
                    break
                chunks.append(await self.reader.readexactly(int(size)))
                line = await self.reader.readuntil(b"\r\n")
                chunks.append(line)
        return b"".join(chunks)

    async def command(self, command: bytes) -> bytes:
        return await self.response(self.send(command))

    async def login(self, user: str, password: str) -> None:
        await self.command(b"LOGIN " + _quoted(user) + b" " + _quoted(password))

    async def select(self, mailbox: bytes = b"INBOX") -> int:
        """SELECT; returns the number of messages (EXISTS)."""
        data = await self.command(b"SELECT " + mailbox)
        end = data.find(b" EXISTS\r\n")
        if end < 0:
            raise ProtocolError(f"SELECT without EXISTS: {data[:200]!r}")
        return int(data[data.rindex(b"* ", 0, end) + 2 : end])

    async def append(self, mailbox: bytes, message: bytes, flags: bytes = b"") -> None:
        """APPEND with a LITERAL+ literal: no round trip for a continuation."""
        flag_part = b" (" + flags + b")" if flags else b""
        await self.command(b"APPEND %s%s {%d+}\r\n%s" % (mailbox, flag_part, len(message), message))

    async def idle(self) -> bytes:
        """Start IDLE; returns the tag, for done()."""
        tag = self.send(b"IDLE")
        line = await self.reader.readuntil(b"\r\n")
        while line.startswith(b"* "):
            line = await self.reader.readuntil(b"\r\n")
        if not line.startswith(b"+"):
            raise ProtocolError(f"IDLE -> {line[:200]!r}")
        return tag

    async def done(self, tag: bytes) -> None:
        self.writer.write(b"DONE\r\n")
        await self.response(tag)

    async def logout(self) -> None:
        try:
            await self.command(b"LOGOUT")
        except (ProtocolError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        self.writer.close()

    def abort(self) -> None:
        self.writer.close()


def _quoted(text: str) -> bytes:
    return b'"' + text.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'
