"""Server policies that the administrator may change while the server runs.

Each starts from the config file ([quota] when_full and warn_at, [policy] trash_days and
junk_days, [auth] allow_plaintext_without_tls, failure_delay and penalty_max, [pop3]
delete_mode and leave_on_server_days); `letterbox policy set` and the console store an
override in the directory, which wins until it is reset, as the protocol switches do.
The server reads them again whenever the directory changes, and puts the [auth] and
[pop3] ones into its settings, where logins and POP3 sessions read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from .config import Settings
from .store.api import Quota

KEYS = ("when_full", "warn_at", "trash_counts", "trash_days", "junk_days", "plaintext_auth", "failure_delay", "penalty_max",
        "pop3_delete_mode", "pop3_leave_days")

DESCRIPTIONS = {
    "when_full": "a delivery to a full mailbox: reject (552) or defer (452)",
    "warn_at": "quota percentages that send the user a warning, e.g. 80,90,95 (none: no warnings)",
    "trash_counts": "whether what is in Trash counts toward the quota (yes or no)",
    "trash_days": "days after which messages in Trash are expunged (0: never)",
    "junk_days": "days after which messages in Junk are expunged (0: never)",
    "plaintext_auth": "passwords accepted without TLS from other hosts than this one (yes or no)",
    "failure_delay": "seconds a login waits after a recent failure from its network, doubled per failure (0: off)",
    "penalty_max": "the longest such wait, in seconds",
    "pop3_delete_mode": "what POP3 DELE does: expunge the message, or hide it from POP3 only",
    "pop3_leave_days": "days after POP3 first retrieved a message that it is deleted (0: never)",
}


class PolicyError(ValueError):
    """A policy value that is not allowed, worded for the administrator."""


@dataclass(frozen=True, slots=True)
class Policy:
    when_full: str = "reject"
    warn_at: tuple[int, ...] = (80, 90, 95)
    trash_days: int = 0
    junk_days: int = 0
    plaintext_auth: bool = False
    failure_delay: float = 2.0
    penalty_max: float = 15.0
    pop3_delete_mode: str = "expunge"
    pop3_leave_days: int = 0
    trash_counts: bool = True

    def quota_of(self, quota: Quota) -> Quota:
        """An account's quota as this policy counts it (with or without Trash)."""
        return quota if quota.count_trash == self.trash_counts else replace(quota, count_trash=self.trash_counts)

    @property
    def defer_when_full(self) -> bool:
        return self.when_full == "defer"

    def as_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in ((k, getattr(self, k)) for k in KEYS)}

    def apply(self, settings: Settings) -> None:
        """Put the policies that live in the settings there (the server's own copy)."""
        settings.auth.allow_plaintext_without_tls = self.plaintext_auth
        settings.auth.failure_delay = self.failure_delay
        settings.auth.penalty_max = self.penalty_max
        settings.pop3.delete_mode = self.pop3_delete_mode  # type: ignore[assignment]
        settings.pop3.leave_on_server_days = self.pop3_leave_days


def configured(settings: Settings) -> Policy:
    return Policy(
        settings.quota.when_full, tuple(settings.quota.warn_at),
        settings.policy.trash_days, settings.policy.junk_days,
        settings.auth.allow_plaintext_without_tls, settings.auth.failure_delay, settings.auth.penalty_max,
        settings.pop3.delete_mode, settings.pop3.leave_on_server_days, settings.quota.trash_counts,
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
    if key in ("trash_days", "junk_days", "pop3_leave_days"):
        try:
            days = int(value)
        except (TypeError, ValueError):
            raise PolicyError(f"{key} must be a whole number of days") from None
        if isinstance(value, bool) or not 0 <= days <= 36500:
            raise PolicyError(f"{key} must be from 0 to 36500 days")
        return days
    if key in ("plaintext_auth", "trash_counts"):
        if isinstance(value, str) and value.strip().lower() in ("yes", "true", "on", "1", "no", "false", "off", "0"):
            return value.strip().lower() in ("yes", "true", "on", "1")
        if not isinstance(value, bool):
            raise PolicyError(f"{key} must be yes or no")
        return value
    if key in ("failure_delay", "penalty_max"):
        top = 30 if key == "failure_delay" else 300
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise PolicyError(f"{key} must be a number of seconds") from None
        if isinstance(value, bool) or not 0 <= seconds <= top:
            raise PolicyError(f"{key} must be from 0 to {top} seconds")
        return seconds
    if key == "pop3_delete_mode":
        if value not in ("expunge", "hide"):
            raise PolicyError("pop3_delete_mode must be expunge or hide")
        return value
    raise PolicyError(f"unknown policy {key!r}: expected one of {', '.join(KEYS)}")


def effective(settings: Settings, overrides: dict[str, str], base: Policy | None = None) -> Policy:
    """The config's policy (or *base*, what the config said at start) with the
    directory's overrides (stored as JSON) applied; an override that no longer validates
    is ignored."""
    values = (base or configured(settings)).as_dict()
    for key, raw in overrides.items():
        try:
            values[key] = check(key, json.loads(raw))
        except (ValueError, PolicyError):
            continue
    values["warn_at"] = tuple(values["warn_at"])
    return Policy(**values)
