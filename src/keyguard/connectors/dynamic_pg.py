"""Dynamic PostgreSQL users: a login role that is a member of a template role, dropped at lease end.

The password reaches the server only as a SCRAM-SHA-256 verifier (never in a statement a
log could keep); ``VALID UNTIL`` is set to the lease's expiry as a second line of defence
should keyguard be down when it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from keyguard.connectors import scram
from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.postgres_role import PostgresAdmin
from keyguard.connectors.secret import Secret


class PgDynamic:
    """Create, extend and drop the users of one ``[connectors.NAME.roles.ROLE]``."""

    backend = "postgresql"

    def __init__(self, pg: PostgresAdmin, template: str) -> None:
        self.pg = pg
        self.template = template
        self._lock = threading.Lock()

    @contextmanager
    def _session(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """The admin connection, kept between credentials (issue rate), one caller at a time."""
        with self._lock, self.pg.kept(what) as conn:
            yield conn

    def _require_template(self, conn: psycopg.Connection[Any]) -> None:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.template,)).fetchone() is None:
            raise UnknownReferenceError(f"connector {self.pg.name!r}: template role {self.template!r} does not exist",
                                        hint="create it with the grants the credentials should have")

    def create(self, username: str, password: Secret, valid_until: datetime) -> None:
        """``CREATE ROLE … LOGIN … VALID UNTIL … IN ROLE template`` (inherits the template's grants)."""
        verifier = scram.make_verifier(password.reveal())
        with self._session("CREATE ROLE") as conn:
            self._require_template(conn)
            conn.execute(sql.SQL(
                "CREATE ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                "PASSWORD {} VALID UNTIL {} IN ROLE {}").format(
                sql.Identifier(username), sql.Literal(verifier), sql.Literal(valid_until.isoformat()),
                sql.Identifier(self.template)))

    def extend(self, username: str, valid_until: datetime) -> None:
        """Move ``VALID UNTIL`` to the renewed expiry."""
        with self._session("ALTER ROLE") as conn:
            if self.exists_in(conn, username):
                conn.execute(sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                    sql.Identifier(username), sql.Literal(valid_until.isoformat())))

    @staticmethod
    def exists_in(conn: psycopg.Connection[Any], username: str) -> bool:
        """True when the role exists."""
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone() is not None

    def exists(self, username: str) -> bool:
        """True when the role exists (tests, bench, the reaper's proof)."""
        with self._session("read pg_roles") as conn:
            return self.exists_in(conn, username)

    def drop(self, username: str) -> int:
        """No more logins, every session terminated, owned objects handed to the template, role dropped.

        Returns the number of sessions terminated; a role already gone is fine (idempotent).
        """
        with self._session("DROP ROLE") as conn:
            if not self.exists_in(conn, username):
                return 0
            ident = sql.Identifier(username)
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE usename = %s AND pid <> pg_backend_pid()", (username,)).fetchall()
            with conn.transaction():
                conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(ident, sql.Identifier(self.template)))
                conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
            return sum(1 for (ok,) in rows if ok)

    def close(self) -> None:
        """Close the kept admin connection."""
        self.pg.close()
