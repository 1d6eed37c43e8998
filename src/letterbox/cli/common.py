"""What every CLI command shares: finding and loading the config, clean error exits."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from ..config import ConfigError, Settings, load

console = Console()
err_console = Console(stderr=True)

DEFAULT_LOCATIONS = (Path("var/letterbox.toml"), Path("/etc/letterbox/letterbox.toml"))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line (no traceback) and exit."""
    err_console.print(f"[bold red]letterbox:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def find_config(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get("LETTERBOX_CONFIG")
    if env:
        return Path(env)
    for p in DEFAULT_LOCATIONS:
        if p.exists():
            return p
    fail(
        "no config file found: pass --config FILE, set LETTERBOX_CONFIG, "
        "or run `make run` once to create var/letterbox.toml"
    )


def settings_from(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        path = find_config(obj.get("config"))
        try:
            obj["settings"] = load(path)
        except ConfigError as e:
            fail(str(e))
    settings: Settings = obj["settings"]
    return settings
