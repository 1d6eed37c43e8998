"""Parse on append: every message is parsed once, when it is stored, so FETCH and SEARCH
read the index (envelope, body structure, header fields, preview) and never the message.
"""

from __future__ import annotations

import asyncio

from ...mime import ParsedMessage, parse_message

THREAD_PARSE = 1024 * 1024
"""Messages from this size up are parsed in a worker thread (the event loop stays free)."""


async def parse(data: bytes, parsed: ParsedMessage | None = None) -> ParsedMessage:
    """*parsed* when the caller has it (a delivery to several recipients parses once),
    else the parse of *data*, a big message in a thread."""
    if parsed is not None:
        return parsed
    return parse_message(data) if len(data) < THREAD_PARSE else await asyncio.to_thread(parse_message, data)
