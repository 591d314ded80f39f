"""Django's PostgreSQL backend, with a health check that costs no round trip while it can.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every request and of
every queue task: a round trip on each path a photo takes (~0.5 ms each at one client here, more
than the query itself, since the server's process must wake up for it). A server that restarts
or ends a connection says so on the socket (an error message, then the close), which makes it
readable while the connection is idle: only then is the server asked. A connection whose socket
is silent is used as is; if it is dead without a word (a cable cut), the query fails as the
`SELECT 1` would have, and the connection is replaced at the end of that request.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        try:
            spoke = select.select([self.connection], [], [], 0)[0]
        except (OSError, ValueError):  # the socket is gone
            return False
        return not spoke or super().is_usable()
