"""The embedded store: Maildir++ folders of message files plus a SQLite index per account."""

from .account import MaildirAccount
from .store import MaildirStore

__all__ = ["MaildirAccount", "MaildirStore"]
