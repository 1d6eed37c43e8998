"""WakingReader: the connection runner is told as bytes, the end of the stream or an
error arrive, and `ready` says whether a read would return at once."""

from __future__ import annotations

import asyncio

import pytest

from letterbox.server.streams import WakingReader, start_server


def test_on_ready_is_called_for_data_eof_and_errors() -> None:
    async def go() -> None:
        reader = WakingReader()
        calls: list[bool] = []
        reader.on_ready = lambda: calls.append(reader.ready())
        assert not reader.ready()
        reader.feed_data(b"a1 NOOP\r\n")
        assert calls == [True]
        assert await reader.read(100) == b"a1 NOOP\r\n"
        assert not reader.ready()
        reader.feed_eof()
        assert calls == [True, True]
        assert reader.ready() and await reader.read(100) == b""

        broken = WakingReader()
        broken.on_ready = lambda: calls.append(broken.ready())
        broken.set_exception(ConnectionResetError("gone"))
        assert calls[-1] is True
        with pytest.raises(ConnectionResetError):
            await broken.read(100)

    asyncio.run(go())


def test_start_server_hands_each_client_a_waking_reader() -> None:
    async def go() -> None:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        woken = asyncio.Event()

        async def serve(reader: WakingReader, writer: asyncio.StreamWriter) -> None:
            assert isinstance(reader, WakingReader)
            reader.on_ready = woken.set
            if not reader.ready():
                await woken.wait()  # no read is waiting: only on_ready can say the bytes came
            got.set_result(await reader.read(100))
            writer.close()

        server = await start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\r\n")
        assert await asyncio.wait_for(got, 10) == b"hello\r\n"
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(go())
