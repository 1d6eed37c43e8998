"""`letterbox serve` and `letterbox demo` (first start writes config, certificate, account)."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from ..auth.factory import open_directory
from ..auth.passwords import make_secrets
from ..config import ConfigError, load
from ..server.tls import write_self_signed
from .common import console, fail, settings_from

DEMO_ADDRESS = "demo@example.com"
DEMO_ADMIN = "admin"

DEMO_CONFIG = """\
# Letterbox demo configuration: loopback only, unprivileged ports.
# Every key is documented in contrib/letterbox.toml.

[server]
hostname = "localhost"
data_dir = "data"
run_dir = "run"

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"

[imap]
listen = ["127.0.0.1:1143"]
tls_listen = ["127.0.0.1:1993"]

[pop3]
listen = ["127.0.0.1:1110"]
tls_listen = ["127.0.0.1:1995"]

[lmtp]
listen = ["127.0.0.1:1024"]
unix_socket = "lmtp.sock"

[smtp]
listen = ["127.0.0.1:1025"]

[web]
listen = "127.0.0.1:8080"
"""


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the server in the foreground until Ctrl-C or SIGTERM."""
    from ..datalock import DataDirBusy
    from ..server.app import StartupError, run
    from ..server.tls import TLSError

    settings = settings_from(ctx)
    try:
        run(settings)
    except (TLSError, StartupError, DataDirBusy) as e:
        fail(str(e))
    except KeyboardInterrupt:
        pass


def _secret_file(path: Path, secret: str) -> None:
    path.write_text(secret + "\n")
    path.chmod(0o600)


def init_demo(home: Path) -> tuple[Path, str | None]:
    """Create config, self-signed certificate, data dir, demo account and console
    administrator if missing.

    Returns the config path and the demo password when it was just created.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = home / "letterbox.toml"
    if not config.exists():
        config.write_text(DEMO_CONFIG)
    settings = load(config)
    cert = settings.resolve(settings.tls.cert) if settings.tls.cert else None
    key = settings.resolve(settings.tls.key) if settings.tls.key else None
    if cert and key and not cert.exists():
        write_self_signed(cert, key, settings.server.hostname)
    password = None
    directory = open_directory(settings, listen=False)
    try:
        if directory.get(DEMO_ADDRESS) is None:
            password = secrets.token_urlsafe(12)
            directory.add(DEMO_ADDRESS, make_secrets(password))
            _secret_file(home / "demo-password", password)
        if not directory.admins.exists(DEMO_ADMIN):
            admin_password = secrets.token_urlsafe(12)
            directory.admins.add(DEMO_ADMIN, admin_password)
            directory.audit.write("cli:demo", "local", f"created administrator {DEMO_ADMIN}")
            _secret_file(home / "admin-password", admin_password)
    finally:
        directory.close()
    return config, password


@click.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=Path("var"),
              show_default=True, help="Folder for config, certificate and data.")
@click.pass_context
def demo(ctx: click.Context, home: Path) -> None:
    """Start a demo server on loopback, creating everything it needs on first start."""
    try:
        config, password = init_demo(home)
    except ConfigError as e:
        fail(str(e))
    secret = home / "demo-password"
    if password is None and secret.exists():
        password = secret.read_text().strip()
    console.print(f"[bold]Letterbox demo[/] — config {config}")
    console.print(f"  account  [cyan]{DEMO_ADDRESS}[/]")
    if password:
        console.print(f"  password [cyan]{password}[/]")
    admin_secret = home / "admin-password"
    settings = load(config)
    if settings.web.enabled:
        scheme = "https" if settings.web.tls else "http"
        console.print(f"  console  [cyan]{scheme}://{settings.web.listen}/[/]")
        if admin_secret.exists():
            console.print(f"  admin    [cyan]{DEMO_ADMIN}[/] / [cyan]{admin_secret.read_text().strip()}[/]"
                          " (mail users log in with address and password)")
    console.print("  try: curl -u demo@example.com pop3://127.0.0.1:1110/  (Ctrl-C stops)")
    ctx.ensure_object(dict)["config"] = config
    ctx.invoke(serve)


COMMANDS = [serve, demo]
