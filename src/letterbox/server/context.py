"""Opening what the server's sessions share, from the settings (the Context itself is
service.context's: protocols use it without importing the server)."""

from __future__ import annotations

from ..auth.authenticator import Authenticator
from ..auth.factory import open_directory
from ..config import Settings
from ..policy import effective
from ..service.context import Context
from ..spool import Spooler
from ..store.factory import open_store
from .tls import server_context


def build_context(settings: Settings, exclusive: bool = True, serving: bool = True) -> Context:
    """Open the directory and the store named by *settings* (no listeners). *exclusive*:
    this process holds the data directory (see letterbox.datalock); *serving*: it
    serves, and hears of directory changes (not `letterbox deliver`)."""
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    directory = open_directory(settings, listen=serving)
    store = open_store(settings, exclusive=exclusive)
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
