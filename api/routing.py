"""How routes are declared: every GET route also answers HEAD, by the same handler."""

from __future__ import annotations

# HEAD runs the GET handler itself (Sanic drops the body), so auth, status, headers and blueprint
# middleware are the same; sanic-ext's derived HEAD routes would skip the GET route's rules.
READ = ("GET", "HEAD")
