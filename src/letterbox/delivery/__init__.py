"""Mail delivery: LMTP (RFC 2033), inbound SMTP (RFC 5321) and `letterbox deliver`."""

from .protocol import lmtp_protocol_factory, smtp_protocol_factory
from .sessions import DeliverySessions, drain, sessions_for, shutdown_all

__all__ = [
    "DeliverySessions",
    "drain",
    "lmtp_protocol_factory",
    "sessions_for",
    "shutdown_all",
    "smtp_protocol_factory",
]
