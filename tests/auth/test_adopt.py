"""Directory.adopt: an account taken from another directory keeps every field, its
incarnation above all; the same account again is left alone, another one of the same
address is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from letterbox.auth import passwords
from letterbox.auth.directory import Directory, DirectoryError
from letterbox.store.api import Quota


def test_adopt_keeps_every_field_and_refuses_another_incarnation(tmp_path: Path) -> None:
    src = Directory(tmp_path / "a" / "accounts.sqlite")
    dst = Directory(tmp_path / "b" / "accounts.sqlite")
    try:
        src.add("ann@example.com", passwords.make_secrets("pw"), ["pop3"], Quota(5000, 7))
        src.set_enabled("ann@example.com", False, "moved, call the desk")
        (account,) = src.list()
        adopted = dst.adopt(account)
        assert adopted == account and dst.list() == [account]
        assert dst.adopt(account) == account  # again: left as it is
        other = dst.add("bob@example.com", passwords.make_secrets("x"))
        src.add("bob@example.com", passwords.make_secrets("y"))
        with pytest.raises(DirectoryError, match="bob@example.com.*another account"):
            dst.adopt(src.require("bob@example.com"))
        assert dst.require("bob@example.com") == other
    finally:
        src.close()
        dst.close()
