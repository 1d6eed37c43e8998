"""What every listener and session shares: settings, directory, store, login policy
(server.context.build_context opens them; protocols only use them)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from ..auth.authenticator import Authenticator
from ..auth.directory import Directory
from ..config import Settings
from ..policy import Policy
from ..spool import Spooler
from ..store.api import Store


@dataclass
class Context:
    settings: Settings
    directory: Directory
    store: Store
    auth: Authenticator
    tls: ssl.SSLContext | None = None
    hostname: str = "localhost"
    spooler: Spooler = field(default_factory=Spooler)
    """Where big uploads (APPEND literals, DATA) wait until their command runs."""
    policy: Policy = field(default_factory=Policy)
    """The policies in force (config and directory overrides; the server renews it when
    the directory changes)."""
    extra: dict[str, object] = field(default_factory=dict)

