"""Accounts, passwords, SASL and login policy."""
