"""The `letterbox` command."""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $LETTERBOX_CONFIG, ./var/letterbox.toml, /etc/letterbox/letterbox.toml).",
)
@click.version_option(__version__, prog_name="letterbox")
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Letterbox mail server: IMAP, POP3, LMTP and SMTP delivery."""
    ctx.ensure_object(dict)["config"] = config


def _register() -> None:
    from .acl import COMMANDS as acl_commands
    from .admins import COMMANDS as admin_commands
    from .deliver import COMMANDS as deliver_commands
    from .protocols import COMMANDS as protocol_commands
    from .quota import COMMANDS as quota_commands
    from .repair import COMMANDS as repair_commands
    from .serve import COMMANDS as serve_commands
    from .store import COMMANDS as store_commands
    from .user import COMMANDS as user_commands

    for commands in (serve_commands, user_commands, quota_commands, acl_commands, protocol_commands,
                     deliver_commands, repair_commands, admin_commands, store_commands):
        for command in commands:
            cli.add_command(command)


def main() -> None:
    _register()
    cli()
