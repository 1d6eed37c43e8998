"""MIME: parse a message once into what FETCH and SEARCH need."""

from .model import ParsedMessage
from .objectid import email_id
from .parse import parse_message

__all__ = ["ParsedMessage", "email_id", "parse_message"]
