"""Mail delivery: LMTP (RFC 2033), inbound SMTP (RFC 5321) and `letterbox deliver`."""

from .protocol import lmtp_protocol_factory, smtp_protocol_factory
from .sessions import DeliverySessions, sessions_for

__all__ = ["DeliverySessions", "lmtp_protocol_factory", "sessions_for", "smtp_protocol_factory"]
