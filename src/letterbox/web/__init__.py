"""The hosting console: web pages for administrators and mail users, a JSON API and
Prometheus metrics, served by `letterbox serve` in its own event loop.

Protocol packages never import this one, and the server only to start it
(`serve.start_console`); the console reaches the server through the Host interface it
is started with (web.host), never by importing it, and the mail through the store API.
"""
