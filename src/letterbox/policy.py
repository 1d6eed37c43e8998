"""Server policies that the administrator may change while the server runs.

Each starts from the config file ([quota] when_full and warn_at, [policy] trash_days and
junk_days); `letterbox policy set` and the console store an override in the directory,
which wins until it is reset, as the protocol switches do. The server reads them again
whenever the directory changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .config import Settings

KEYS = ("when_full", "warn_at", "trash_days", "junk_days")

DESCRIPTIONS = {
    "when_full": "a delivery to a full mailbox: reject (552) or defer (452)",
    "warn_at": "quota percentages that send the user a warning, e.g. 80,90,95 (none: no warnings)",
    "trash_days": "days after which messages in Trash are expunged (0: never)",
    "junk_days": "days after which messages in Junk are expunged (0: never)",
}


class PolicyError(ValueError):
    """A policy value that is not allowed, worded for the administrator."""


@dataclass(frozen=True, slots=True)
class Policy:
    when_full: str = "reject"
    warn_at: tuple[int, ...] = (80, 90, 95)
    trash_days: int = 0
    junk_days: int = 0

    @property
    def defer_when_full(self) -> bool:
        return self.when_full == "defer"

    def as_dict(self) -> dict[str, Any]:
        return {"when_full": self.when_full, "warn_at": list(self.warn_at),
                "trash_days": self.trash_days, "junk_days": self.junk_days}


def configured(settings: Settings) -> Policy:
    return Policy(
        settings.quota.when_full, tuple(settings.quota.warn_at),
        settings.policy.trash_days, settings.policy.junk_days,
    )


def check(key: str, value: Any) -> Any:
    """The value to store for *key*, validated; raises PolicyError."""
    if key == "when_full":
        if value not in ("reject", "defer"):
            raise PolicyError("when_full must be reject or defer")
        return value
    if key == "warn_at":
        if isinstance(value, str):
            text = value.strip().lower()
            value = [] if text in ("", "none") else [p.strip().rstrip("%") for p in text.split(",")]
        if not isinstance(value, list) or len(value) > 10:
            raise PolicyError("warn_at must be at most 10 percentages, e.g. 80,90,95")
        try:
            levels = sorted({int(v) for v in value})
        except (TypeError, ValueError):
            raise PolicyError("warn_at must be whole percentages, e.g. 80,90,95") from None
        if any(not 1 <= v <= 100 for v in levels):
            raise PolicyError("each warn_at percentage must be from 1 to 100")
        return levels
    if key in ("trash_days", "junk_days"):
        try:
            days = int(value)
        except (TypeError, ValueError):
            raise PolicyError(f"{key} must be a whole number of days") from None
        if isinstance(value, bool) or not 0 <= days <= 36500:
            raise PolicyError(f"{key} must be from 0 to 36500 days")
        return days
    raise PolicyError(f"unknown policy {key!r}: expected one of {', '.join(KEYS)}")


def effective(settings: Settings, overrides: dict[str, str]) -> Policy:
    """The config's policy with the directory's overrides (stored as JSON) applied; an
    override that no longer validates is ignored."""
    values = configured(settings).as_dict()
    for key, raw in overrides.items():
        try:
            values[key] = check(key, json.loads(raw))
        except (ValueError, PolicyError):
            continue
    return Policy(values["when_full"], tuple(values["warn_at"]), values["trash_days"], values["junk_days"])
