"""What every listener and session shares: settings, directory, store, login policy."""

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


def build_context(settings: Settings, exclusive: bool = True) -> Context:
    """Open the directory and the store named by *settings* (no listeners). *exclusive*:
    this process holds the data directory (see letterbox.datalock)."""
    from ..policy import effective
    from ..store.api import Limits
    from ..store.maildir import MaildirStore
    from .tls import server_context

    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    directory = Directory(data / "accounts.sqlite")
    lim = settings.limits
    store = MaildirStore(
        data / "mail", exclusive=exclusive, reserve=settings.store.reserve,
        open_accounts=settings.store.open_accounts,
        limits=Limits(
            mailboxes=lim.mailboxes, keywords=lim.keywords, keyword_length=lim.keyword_length,
            metadata_value=lim.metadata_value_size, metadata_entries=lim.metadata_entries,
            metadata_bytes=lim.metadata_bytes,
        ),
    )
    spool = data / "spool"
    spool.mkdir(exist_ok=True)
    tls = None
    if settings.tls.cert is not None and settings.tls.key is not None:
        tls = server_context(
            settings.resolve(settings.tls.cert), settings.resolve(settings.tls.key), settings.tls.min_version
        )
    return Context(
        settings=settings,
        directory=directory,
        store=store,
        auth=Authenticator(directory, settings.auth),
        tls=tls,
        hostname=settings.server.hostname,
        spooler=Spooler(spool),
        policy=effective(settings, directory.policies()),
    )
