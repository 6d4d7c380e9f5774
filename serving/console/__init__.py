"""The web console under ``/console``: server-rendered pages for reps, marketers
and data scientists over the same library functions as the ``/v1`` routes.

Login takes an API key; the session cookie (signed with ``NBA_CONSOLE_SECRET``)
keeps the key's SHA-256 digest, never the key, so a key removed from
``NBA_API_KEYS`` logs its sessions out at their next request. Every form posts a
CSRF token bound to the session. See docs/console.md.
"""
