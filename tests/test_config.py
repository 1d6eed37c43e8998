"""Config validation: one clear line naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from letterbox.config import ConfigError, load, parse_size


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "letterbox.toml"
    p.write_text(text)
    return p


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    s = load(write(tmp_path, "[server]\ndata_dir = 'd'\n"))
    assert s.data_dir == (tmp_path / "d").resolve()
    assert s.pop3.delete_mode == "expunge"
    assert s.imap.idle_timeout >= 1800


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[pop3]\ndelete_mode = 'shred'\n", "pop3.delete_mode = 'shred' is not allowed: expected 'expunge' or 'hide'"),
        ("[imap]\nlisten = ['nowhere']\n", "imap.listen"),
        ("[delivery]\nmax_message_size = 'lots'\n", "delivery.max_message_size = 'lots'"),
        ("[server]\nbogus = 1\n", "unknown key 'server.bogus'"),
        ("[imap]\nidle_timeout = 60\n", "imap.idle_timeout = 60"),
        ("[pop3\n", "not valid TOML"),
        ("[tls]\ncert = 'x.pem'\n", "tls.cert and tls.key must be set together"),
        ("[store]\nbackend = 'mysql'\n", "store.backend = 'mysql' is not allowed: expected 'maildir' or 'postgresql'"),
        ("[store]\nbackend = 'postgresql'\n", 'store.backend = "postgresql" needs store.dsn'),
        ("[store]\nbackend = 'postgresql'\ndsn = 'mysql://u:hunter2@h/db'\n", "store.dsn must start with postgresql://"),
        ("[store]\ndsn = 5\n", "store.dsn is not valid"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_a_dsn_password_is_never_shown(tmp_path: Path) -> None:
    for text in ("[store]\nbackend = 'postgresql'\ndsn = 'pg://u:hunter2@h/db'\n",
                 "[store]\nbackend = 'postgresql'\ndsn = ['postgresql://u:hunter2@h/db']\n"):
        with pytest.raises(ConfigError) as e:
            load(write(tmp_path, text))
        assert "hunter2" not in str(e.value)


def test_postgresql_backend(tmp_path: Path) -> None:
    s = load(write(tmp_path, "[store]\nbackend = 'postgresql'\ndsn = 'postgresql://u@127.0.0.1/mail'\n"))
    assert (s.store.backend, s.store.dsn) == ("postgresql", "postgresql://u@127.0.0.1/mail")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "nope.toml")


def test_sizes() -> None:
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("512k") == 512 * 1024
    assert parse_size(100) == 100
    with pytest.raises(ValueError):
        parse_size("-1")
