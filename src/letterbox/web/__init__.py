"""The hosting console: web pages for administrators and mail users, a JSON API and
Prometheus metrics, served by `letterbox serve` in its own event loop.

Protocol packages never import this one; it reaches the server through the Server object
it is started with, and the mail through the store API.
"""
