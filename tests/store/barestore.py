"""A backend with only what the Store interface demands: none of the server's hooks."""

from __future__ import annotations

from collections.abc import Callable

from letterbox.store.api import AccountStore, Store, StoreError, Usage
from letterbox.store.feed import Subscription


class Bare(Store):
    """A backend with only what the interface demands."""

    async def account(self, address: str, incarnation: str | None = None) -> AccountStore:
        raise StoreError("none")

    async def delete_account(self, address: str, keep_mail: bool = False) -> None:
        pass

    async def grantors(self, address: str) -> list[str]:
        return []

    def subscribe(self, address: str, *more: str) -> Subscription:
        raise NotImplementedError

    def watch(self, callback: Callable[[str], None]) -> None:
        pass

    async def peek_usage(self, address: str, count_trash: bool = True) -> Usage | None:
        return None

    async def notify_external(self, address: str) -> None:
        pass

    async def notify_acl(self, address: str, incarnation: str, mailbox: str, identifier: str) -> None:
        pass

    async def close(self) -> None:
        pass
