"""PostgreSQL login roles (kind ``role``, id the role name), through a superuser connection."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from typing_extensions import override

from keyguard.clock import Clock, format_time
from keyguard.connectors import scram
from keyguard.connectors.base import (
    Adapter,
    CheckReport,
    Identified,
    Inventoried,
    Outcome,
    PermissionCheck,
    Proof,
    Rotation,
    Step,
    Switched,
    UsageRecord,
)
from keyguard.connectors.config import ConnectorConfig, SecretSource
from keyguard.connectors.deliver import replace_in_files
from keyguard.connectors.errors import MissingPermissionError, UnknownReferenceError, UnreachableError
from keyguard.connectors.postgres_log import connection_events
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret, scrub
from keyguard.errors import KeyguardError, RefusedError


class PostgresAdmin:
    """The connector's superuser connection (``dsn`` without password, ``password_env``)."""

    def __init__(self, config: ConnectorConfig, *, environ: Mapping[str, str] | None = None,
                 source: SecretSource | None = None) -> None:
        self.name = config.name
        self.dsn = str(config.get("dsn"))
        self.log_file = config.get("log_file")
        self.timeout = config.timeout()
        self._password = config.credential("password", environ=environ, source=source)
        self._kept: psycopg.Connection[Any] | None = None
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        self.host, self.port, self.dbname = str(info.get("host", "localhost")), info.get("port"), info.get("dbname")

    def _fail(self, exc: psycopg.Error, what: str) -> KeyguardError:
        text = scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, (self._password,))
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return MissingPermissionError(self.name, what)
        if isinstance(exc, psycopg.OperationalError):
            if "password authentication failed" in text or "no password supplied" in text:
                return RefusedError(f"connector {self.name!r}: PostgreSQL refused the connector's own password",
                                    hint="check password_env")
            return UnreachableError(self.name, f"PostgreSQL at {self.host}:{self.port or 5432}",
                                    type(exc).__name__)
        return KeyguardError(f"connector {self.name!r}: {what} failed ({exc.sqlstate or type(exc).__name__})")

    @contextmanager
    def connect(self, what: str = "connect") -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection; every psycopg error becomes one keyguard error."""
        try:
            with self._open() as conn:
                yield conn
        except psycopg.Error as exc:
            raise self._fail(exc, what) from None

    def _open(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.timeout))}
        if self._password is not None:
            kwargs["password"] = self._password.reveal()
        return psycopg.connect(self.dsn, **kwargs)

    @contextmanager
    def kept(self, what: str = "connect") -> Iterator[psycopg.Connection[Any]]:
        """Like :meth:`connect`, on one connection kept open between calls (reopened after an error)."""
        try:
            if self._kept is None or self._kept.closed:
                self._kept = self._open()
            yield self._kept
        except psycopg.Error as exc:
            if self._kept is not None:
                self._kept.close()
                self._kept = None
            raise self._fail(exc, what) from None

    def login_refused(self, role: str, password: Secret) -> tuple[bool, str]:
        """Try a login as ``role`` with ``password``: (refused?, what the server said)."""
        try:
            with psycopg.connect(self.dsn, user=role, password=password.reveal(),
                                 connect_timeout=max(1, int(self.timeout)), autocommit=True):
                return False, "login accepted"
        except psycopg.OperationalError as exc:
            text = str(exc)
            if "password authentication failed" in text:
                return True, "password authentication failed (28P01)"
            if "is not permitted to log in" in text:
                return True, "role is not permitted to log in"
            raise self._fail(exc, "login probe") from None

    def close(self) -> None:
        """Close the kept connection, if any (:meth:`connect` holds nothing between calls)."""
        if self._kept is not None:
            self._kept.close()
            self._kept = None


def check_postgres(pg: PostgresAdmin) -> CheckReport:
    """Reachable, and superuser (pg_authid), CREATEROLE, pg_signal_backend, pg_stat_activity, log file."""
    try:
        with pg.connect() as conn:
            row = conn.execute(
                "SELECT current_user, rolsuper, rolcreaterole, pg_has_role(current_user, 'pg_signal_backend', "
                "'MEMBER'), pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') FROM pg_roles "
                "WHERE rolname = current_user").fetchone()
    except RefusedError as exc:
        return CheckReport(pg.name, "postgresql", True, "", problem=exc.message)
    except KeyguardError as exc:
        return CheckReport(pg.name, "postgresql", False, "", problem=exc.message)
    assert row is not None
    user, superuser, createrole, signal, stats = row
    checks = [
        PermissionCheck("read pg_authid (superuser)", bool(superuser), "identify compares SCRAM verifiers"),
        PermissionCheck("ALTER ROLE … PASSWORD (CREATEROLE)", bool(superuser or createrole)),
        PermissionCheck("pg_terminate_backend (pg_signal_backend)", bool(superuser or signal)),
        PermissionCheck("pg_stat_activity of every role (pg_read_all_stats)", bool(superuser or stats)),
    ]
    if pg.log_file:
        readable = Path(pg.log_file).is_file() and _readable(Path(pg.log_file))
        checks.append(PermissionCheck(f"read log_file {pg.log_file}", readable))
    return CheckReport(pg.name, "postgresql", True, str(user), tuple(checks))


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def _pg_at(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


class PostgresRole(Adapter):
    """A login role: identified by its SCRAM verifier, new password + sessions cut, proven dead by a login."""

    kind = "role"
    steps = frozenset(Step)
    manual: ClassVar[dict[Step, str]] = {}

    def __init__(self, connector: str, pg: PostgresAdmin, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.pg = pg

    def _verifier(self, conn: psycopg.Connection[Any], role: str, ref: Ref) -> str | None:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        if row is None:
            raise UnknownReferenceError(f"{ref}: no such role", hint="roles: `keyguard connector inventory`")
        return None if row[0] is None else str(row[0])

    def _set_password(self, conn: psycopg.Connection[Any], role: str) -> Secret:
        password = Secret(secrets.token_urlsafe(24))
        verifier = scram.make_verifier(password.reveal())  # the plain value never reaches the server or its logs
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
        return password

    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """The role whose SCRAM-SHA-256 (or md5) verifier the leaked password opens; no login is attempted."""
        with self.pg.connect("read pg_authid") as conn:
            rows = conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL").fetchall()
        for role, verifier in rows:
            if scram.matches(leaked.reveal(), verifier) or scram.md5_matches(leaked.reveal(), role, verifier):
                return Identified(self.ref(str(role)), str(role), {"verifier": str(verifier).split("$", 1)[0]})
        return None

    @override
    def inventory(self) -> list[Inventoried]:
        """Login roles with password type, expiry and their newest session."""
        with self.pg.connect("read pg_authid") as conn:
            rows = conn.execute(
                "SELECT a.rolname, a.rolpassword IS NOT NULL, split_part(coalesce(a.rolpassword, ''), '$', 1), "
                "a.rolvaliduntil, (SELECT max(backend_start) FROM pg_stat_activity s WHERE s.usename = a.rolname), "
                "(SELECT count(*) FROM pg_stat_activity s WHERE s.usename = a.rolname) "
                "FROM pg_authid a WHERE a.rolcanlogin ORDER BY a.rolname").fetchall()
        return [Inventoried(self.ref(str(name)), "password" if has else "no password", None, _pg_at(last),
                            {"verifier": kind or None, "valid_until": str(until) if until else None,
                             "sessions": int(count)})
                for name, has, kind, until, last, count in rows]

    def _terminate(self, conn: psycopg.Connection[Any], role: str) -> int:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE usename = %s AND pid <> pg_backend_pid()", (role,)).fetchall()
        return sum(1 for (ok,) in rows if ok)

    @override
    def contain(self, ref: Ref) -> Outcome:
        """A new random password nobody is told, then every session of the role terminated."""
        with self.pg.connect("ALTER ROLE") as conn:
            self._verifier(conn, ref.id, ref)
            self._set_password(conn, ref.id)
            killed = self._terminate(conn, ref.id)
        return Outcome(ref, Step.CONTAIN, self.clock.now(),
                       ("password replaced by a random one", f"{killed} session(s) terminated"), {"terminated": killed})

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead when the verifier no longer matches and a login with the leaked password is refused."""
        with self.pg.connect("read pg_authid") as conn:
            verifier = self._verifier(conn, ref.id, ref) or ""
        if leaked is None:
            return Proof(ref, self.clock.now(), False, ("no leaked password given",))
        still = scram.matches(leaked.reveal(), verifier) or scram.md5_matches(leaked.reveal(), ref.id, verifier)
        refused, said = self.pg.login_refused(ref.id, leaked)
        evidence = (f"pg_authid: verifier {'still matches' if still else 'no longer matches'} the leaked password",
                    f"login as {ref.id} with the leaked password: {said}")
        return Proof(ref, self.clock.now(), refused and not still, evidence)

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """The role's sessions in pg_stat_activity and, with ``log_file``, its logins from the server log."""
        with self.pg.connect("read pg_stat_activity") as conn:
            rows = conn.execute(
                "SELECT pid, backend_start, host(client_addr), application_name, datname, state "
                "FROM pg_stat_activity WHERE usename = %s AND backend_start >= %s", (ref.id, since)).fetchall()
        out = [UsageRecord(ref, "event", _pg_at(start), {
            "ts": format_time(start), "actor": f"postgresql:{ref.id}", "source_ip": addr,
            "user_agent": app or None, "op": "postgresql:session", "key": str(ref), "version": None,
            "result": "ok", "reason": f"database {db}, {state}", "request_id": f"pid-{pid}",
        }) for pid, start, addr, app, db, state in rows]
        if self.pg.log_file:
            try:
                with open(self.pg.log_file, encoding="utf-8", errors="replace") as handle:
                    events = connection_events(handle, ref.id, str(ref), since)
            except OSError:
                raise MissingPermissionError(self.connector, f"read {self.pg.log_file}") from None
            out += [UsageRecord(ref, "event", datetime.fromisoformat(e["ts"].replace("Z", "+00:00")), e)
                    for e in events]
        out.sort(key=lambda r: r.at or since)
        return out

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """A new random password for the role (the role stays: no second credential to clean up on a rerun)."""
        with self.pg.connect("ALTER ROLE") as conn:
            self._verifier(conn, ref.id, ref)
            password = self._set_password(conn, ref.id)
        return Rotation(ref, ref, self.clock.now(), password, detail={"role": ref.id})

    @override
    def deliver(self, rotation: Rotation, targets: Sequence[Path], old: Secret | None = None) -> Outcome:
        """Replace the old password by the new one in the consumers' files."""
        assert rotation.new_secret is not None
        changed = replace_in_files(targets, old.reveal(), rotation.new_secret) if old is not None else []
        return Outcome(rotation.ref, Step.DELIVER, self.clock.now(), tuple(f"wrote {p}" for p in changed),
                       {"files": changed})

    @override
    def consumers_switched(self, rotation: Rotation) -> Switched:
        """Switched when the role has sessions and every one started after the rotation."""
        with self.pg.connect("read pg_stat_activity") as conn:
            starts = [_pg_at(s) for (s,) in conn.execute(
                "SELECT backend_start FROM pg_stat_activity WHERE usename = %s", (rotation.ref.id,)).fetchall()]
        old = [s for s in starts if s is not None and s < rotation.at]
        new = [s for s in starts if s is not None and s >= rotation.at]
        return Switched(rotation.ref, bool(new) and not old,
                        (f"{len(new)} session(s) since the rotation", f"{len(old)} session(s) from before it"))

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Sessions still open from before the rotation are terminated; the old password is already gone."""
        with self.pg.connect("pg_terminate_backend") as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND backend_start < %s "
                "AND pid <> pg_backend_pid()", (rotation.ref.id, rotation.at)).fetchall()
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(),
                       ("old password replaced at rotation", f"{len(rows)} older session(s) terminated"))
