"""A front end in a process of its own for the tests: appends messages to one account
and prints each acknowledged UID, until killed or done.

    python -m tests.store.postgres.frontend_child DSN SCHEMA ADDRESS COUNT
"""

from __future__ import annotations

import asyncio
import sys

from letterbox.store.postgres import PostgresStore


def message(n: int) -> bytes:
    return f"Subject: child {n}\r\nMessage-ID: <child{n}@x>\r\n\r\n{'body ' * (n % 50)}\r\n".encode()


async def main(dsn: str, schema: str, address: str, count: int) -> None:
    store = await PostgresStore.open(dsn, schema=schema, pool_size=2)
    acc = await store.account(address)
    print("ready", flush=True)
    for n in range(count):
        result = await acc.append("INBOX", message(n))
        print(result.uid, n, flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
