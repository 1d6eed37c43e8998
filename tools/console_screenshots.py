"""Screenshots of the web console for the README (docs/console-*.png).

    .venv/bin/python tools/console_screenshots.py

Starts a private server (bench's Letterbox, console on), makes a few dozen accounts with
mail of varied sizes over LMTP and IMAP, and photographs the dashboard, the accounts
table and a mail user's usage page in headless Chromium.
"""

from __future__ import annotations

import imaplib
import random
import re
import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import Letterbox, make_root, remove_root  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
PASSWORD = "screenshot-pw-1"
NAMES = ("anna", "bruno", "chloe", "dmitri", "elena", "farid", "greta", "hugo", "ines", "jonas", "kaori", "liam",
         "maya", "nils", "olga", "pablo", "quinn", "rosa", "sami", "tara", "ugo", "vera", "wei", "xena")


def message(subject: str, size: int) -> bytes:
    return (f"From: Someone <someone@example.org>\r\nTo: you@example.com\r\nSubject: {subject}\r\n"
            "Date: Mon, 2 Nov 2026 10:00:00 +0100\r\n\r\n").encode() + b"lorem ipsum " * (size // 12) + b"\r\n"


def main() -> None:
    from playwright.sync_api import sync_playwright

    from letterbox.auth.directory import Directory
    from letterbox.config import load
    from letterbox.store.api import Quota

    rng = random.Random(7)
    root = make_root("letterbox-shots-")
    server: Letterbox | None = None
    try:
        server = Letterbox(root / "server")
        server.web = True
        server.configure()
        users = [f"{n}@example.com" for n in NAMES]
        server.add_users(users, PASSWORD)
        settings = load(server.config)
        d = Directory(settings.data_dir / "accounts.sqlite")
        d.admins.add("admin", PASSWORD)
        for u in users:
            d.set_quota(u, Quota(bytes=rng.choice((0, 5, 10, 20)) * 1024 * 1024))
        d.set_protocols("hugo@example.com", ["pop3"])
        server.start()
        with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
            for u in users:
                for i in range(rng.randint(1, 12)):
                    try:
                        lmtp.sendmail("someone@example.org", [u],
                                      message(f"note {i}", rng.choice((2, 20, 200, 900)) * 1024))
                    except smtplib.SMTPRecipientsRefused:
                        pass  # full: the table shows it
        d.set_enabled("olga@example.com", False, "Moved to the new office server")
        d.close()
        imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
        imap.login("anna@example.com", PASSWORD)
        for folder, count, size in (("Sent", 14, 120_000), ("Archive", 20, 200_000), ("Trash", 9, 80_000),
                                    ("Junk", 5, 10_000), ("Drafts", 2, 3_000)):
            for i in range(count):
                imap.append(folder, "(\\Seen)", None, message(f"{folder} {i}", size))
        imap.logout()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for who, path, name in (("admin", "/admin", "dashboard"),
                                    ("admin", "/admin/accounts?sort=bytes&descending=true", "accounts"),
                                    ("anna@example.com", "/me", "usage")):
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.goto(server.web_url + "/login")
                page.fill("input[name=username]", who)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.goto(server.web_url + path)
                if name == "usage":
                    page.select_option("select[name=folder]", "Archive")
                    page.fill("input[name=larger_than_mb]", "0.1")
                    page.get_by_role("button", name="Show what would go").click()
                    page.locator("#cleanup-preview").wait_for()
                text = page.content()
                assert not re.search(r"Internal|Traceback", text)
                page.screenshot(path=str(DOCS / f"console-{name}.png"), full_page=name != "accounts")
                page.close()
                print(f"wrote docs/console-{name}.png")
            browser.close()
    finally:
        if server is not None:
            server.stop()
        remove_root(root)


if __name__ == "__main__":
    main()
