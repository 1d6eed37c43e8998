"""MIME: parse a message once into what FETCH and SEARCH need."""

from .model import ParsedMessage
from .parse import parse_message

__all__ = ["ParsedMessage", "parse_message"]
