"""The connectors' client-side deadline, a backstop for a hung network.

Each call is bounded by the connect (or login) timeout plus the query timeout plus this margin:
the server's own statement timeout is meant to fire first, leaving the connection reusable.
"""

GUARD_MARGIN = 1.0
