"""Letterbox: a mail server with IMAP, POP3, LMTP and SMTP on a durable Maildir store."""

__version__ = "0.1.0"
