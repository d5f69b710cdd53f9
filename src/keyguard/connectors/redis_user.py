"""Redis ACL users (kind ``user``, id the user name), through an admin connection (redis-py)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import redis
from typing_extensions import override

from keyguard.clock import Clock, format_time
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
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret, scrub
from keyguard.errors import KeyguardError, RefusedError

T = TypeVar("T")
#: What the playbook runs, checked with ACL DRYRUN for the connector's own user.
NEEDED = (("ACL", "GETUSER", "x"), ("ACL", "SETUSER", "x"), ("ACL", "LIST"), ("ACL", "LOG"),
          ("CLIENT", "KILL", "USER", "x"), ("CLIENT", "LIST"))


def sha256_hex(value: str) -> str:
    """Redis's stored form of a password."""
    return hashlib.sha256(value.encode()).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _exec(client: redis.Redis, *args: str) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _pairs(reply: Any) -> dict[str, Any]:
    if isinstance(reply, dict):
        return {_text(k): v for k, v in reply.items()}
    items = list(reply or [])
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


class RedisAdmin:
    """The connector's admin connection (``url`` without password, ``username``, ``password_env``)."""

    def __init__(self, config: ConnectorConfig, *, environ: Mapping[str, str] | None = None,
                 source: SecretSource | None = None) -> None:
        self.name = config.name
        self.url = str(config.get("url"))
        self.username = config.get("username")
        self.timeout = config.timeout()
        self._password = config.credential("password", environ=environ, source=source)
        self._client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        """The admin client (connected lazily)."""
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url, username=self.username, password=self._password.reveal() if self._password else None,
                socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        return self._client

    def run(self, what: str, *args: str) -> Any:
        """One command; redis errors become one keyguard error naming ``what``."""
        return self.call(what, lambda: _exec(self.client(), *args))

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with the admin client's errors translated."""
        try:
            return fn()
        except redis.exceptions.NoPermissionError:
            raise MissingPermissionError(self.name, what) from None
        except redis.exceptions.AuthenticationError:
            raise RefusedError(f"connector {self.name!r}: Redis refused the connector's own credentials",
                               hint="check username and password_env") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise UnreachableError(self.name, "Redis", type(exc).__name__) from None
        except redis.exceptions.ResponseError as exc:
            text = scrub(str(exc), (self._password,))
            if "NOPERM" in text or "no permissions" in text:
                raise MissingPermissionError(self.name, what) from None
            raise KeyguardError(f"connector {self.name!r}: {what} failed ({text.split(' ', 1)[0]})") from None

    def auth_refused(self, user: str, password: Secret) -> tuple[bool, str]:
        """``AUTH user password`` on a fresh connection (never redis-cli, which falls back to default)."""
        probe = redis.Redis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        try:
            _exec(probe, "AUTH", user, password.reveal())
            return False, "AUTH accepted"
        except redis.exceptions.AuthenticationError as exc:
            return True, f"AUTH refused ({str(exc).split(' ', 1)[0] or 'WRONGPASS'})"
        except redis.exceptions.ResponseError as exc:
            if "WRONGPASS" in str(exc) or "invalid" in str(exc):
                return True, "AUTH refused (WRONGPASS)"
            raise KeyguardError(f"connector {self.name!r}: AUTH probe failed") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise UnreachableError(self.name, "Redis", type(exc).__name__) from None
        finally:
            probe.close()

    def close(self) -> None:
        """Close the admin connection."""
        if self._client is not None:
            self._client.close()
            self._client = None


def check_redis(rd: RedisAdmin) -> CheckReport:
    """Reachable (``ACL WHOAMI``), and each command of the playbook allowed (``ACL DRYRUN``)."""
    try:
        me = _text(rd.run("ACL WHOAMI", "ACL", "WHOAMI"))
    except RefusedError as exc:
        return CheckReport(rd.name, "redis", True, "", problem=exc.message)
    except KeyguardError as exc:
        return CheckReport(rd.name, "redis", False, "", problem=exc.message)
    checks: list[PermissionCheck] = []
    for command in NEEDED:
        name = " ".join(c for c in command if c != "x")
        try:
            reply = _text(_exec(rd.client(), "ACL", "DRYRUN", me, *command))
            checks.append(PermissionCheck(name, reply == "OK", "" if reply == "OK" else reply))
        except redis.exceptions.RedisError as exc:
            checks.append(PermissionCheck(name, None, f"not verified: ACL DRYRUN {type(exc).__name__}"))
    return CheckReport(rd.name, "redis", True, me, tuple(checks))


class RedisUser(Adapter):
    """An ACL user: identified by password hash, reset + clients killed, proven dead by AUTH."""

    kind = "user"
    steps = frozenset(Step)
    manual: ClassVar[dict[Step, str]] = {}

    def __init__(self, connector: str, rd: RedisAdmin, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.rd = rd

    def _users(self) -> list[str]:
        return [_text(u) for u in self.rd.run("ACL USERS", "ACL", "USERS")]

    def _hashes(self, user: str, ref: Ref | None = None) -> list[str]:
        reply = self.rd.run("ACL GETUSER", "ACL", "GETUSER", user)
        if reply is None:
            raise UnknownReferenceError(f"{ref or user}: no such ACL user", hint="users: ACL USERS")
        return [_text(h) for h in _pairs(reply).get("passwords", [])]

    def _clients(self, user: str) -> list[dict[str, str]]:
        text = _text(self.rd.run("CLIENT LIST", "CLIENT", "LIST"))
        rows = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in text.splitlines()]
        return [r for r in rows if r.get("user") == user]

    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """The user whose stored SHA-256 password hash is that of the leaked value (no AUTH attempted)."""
        digest = sha256_hex(leaked.reveal())
        for user in self._users():
            if any(secrets.compare_digest(digest, h) for h in self._hashes(user)):
                return Identified(self.ref(user), user, {})
        return None

    @override
    def inventory(self) -> list[Inventoried]:
        """Every ACL user with its flags and live connections."""
        out: list[Inventoried] = []
        for user in self._users():
            info = _pairs(self.rd.run("ACL GETUSER", "ACL", "GETUSER", user))
            flags = [_text(f) for f in info.get("flags", [])]
            clients = self._clients(user)
            out.append(Inventoried(self.ref(user), "on" if "on" in flags else "off", None, None,
                                   {"flags": flags, "passwords": len(info.get("passwords", [])),
                                    "connections": len(clients)}))
        return out

    def _kill(self, user: str) -> int:
        return int(self.rd.run("CLIENT KILL", "CLIENT", "KILL", "USER", user))

    @override
    def contain(self, ref: Ref) -> Outcome:
        """``resetpass`` plus a random password nobody is told (set as its hash), then ``CLIENT KILL USER``."""
        self._hashes(ref.id, ref)
        self.rd.run("ACL SETUSER", "ACL", "SETUSER", ref.id, "resetpass", "#" + sha256_hex(secrets.token_urlsafe(32)))
        killed = self._kill(ref.id)
        return Outcome(ref, Step.CONTAIN, self.clock.now(), ("passwords reset to a random one",
                                                              f"{killed} connection(s) killed"), {"killed": killed})

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead when no stored hash is the leaked value's and ``AUTH user leaked`` is refused."""
        hashes = self._hashes(ref.id, ref)
        if leaked is None:
            return Proof(ref, self.clock.now(), False, ("no leaked password given",))
        stored = sha256_hex(leaked.reveal()) in hashes
        refused, said = self.rd.auth_refused(ref.id, leaked)
        return Proof(ref, self.clock.now(), refused and not stored, (
            f"ACL GETUSER: leaked password {'still stored' if stored else 'not stored'}",
            f"AUTH {ref.id} with the leaked password: {said}"))

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """``ACL LOG`` entries of the user (refused auths and commands) and its live connections."""
        now = self.clock.now()
        out: list[UsageRecord] = []
        for raw in self.rd.run("ACL LOG", "ACL", "LOG", "128") or []:
            entry = {k: _text(v) for k, v in _pairs(raw).items()}
            if entry.get("username") != ref.id:
                continue
            created = entry.get("timestamp-last-updated")
            at = (datetime.fromtimestamp(int(created) / 1000, now.tzinfo) if created
                  else now - timedelta(seconds=float(entry.get("age-seconds", "0"))))
            if at < since:
                continue
            client = dict(f.split("=", 1) for f in entry.get("client-info", "").split() if "=" in f)
            out.append(UsageRecord(ref, "event", at, {
                "ts": format_time(at), "actor": f"redis:{ref.id}", "source_ip": client.get("addr", "").rsplit(":", 1)[0]
                or None, "user_agent": client.get("name") or None, "op": f"redis:{entry.get('object', '?')}",
                "key": str(ref), "version": None, "result": "denied",
                "reason": f"ACL LOG {entry.get('reason')} ({entry.get('context')}), count {entry.get('count')}",
                "request_id": entry.get("entry-id"),
            }))
        for client in self._clients(ref.id):
            at = now - timedelta(seconds=int(client.get("age", "0")))
            if at >= since:
                out.append(UsageRecord(ref, "event", at, {
                    "ts": format_time(at), "actor": f"redis:{ref.id}",
                    "source_ip": client.get("addr", "").rsplit(":", 1)[0] or None,
                    "user_agent": client.get("name") or None, "op": "redis:connection", "key": str(ref),
                    "version": None, "result": "ok", "reason": f"connected, last command {client.get('cmd')}",
                    "request_id": f"client-{client.get('id')}",
                }))
        out.sort(key=lambda r: r.at or since)
        return out

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """A new password added beside the current ones (given as its hash); retire removes the others."""
        self._hashes(ref.id, ref)
        password = Secret(secrets.token_urlsafe(32))
        digest = sha256_hex(password.reveal())
        self.rd.run("ACL SETUSER", "ACL", "SETUSER", ref.id, "#" + digest)
        return Rotation(ref, ref, self.clock.now(), password, detail={"user": ref.id, "keep": digest[:12]})

    @override
    def deliver(self, rotation: Rotation, targets: Sequence[Path], old: Secret | None = None) -> Outcome:
        """Replace the old password by the new one in the consumers' files."""
        assert rotation.new_secret is not None
        changed = replace_in_files(targets, old.reveal(), rotation.new_secret) if old is not None else []
        return Outcome(rotation.ref, Step.DELIVER, self.clock.now(), tuple(f"wrote {p}" for p in changed),
                       {"files": changed})

    @override
    def consumers_switched(self, rotation: Rotation) -> Switched:
        """Switched when the user has connections and each was opened after the rotation."""
        now = self.clock.now()
        ages = [now - timedelta(seconds=int(c.get("age", "0"))) for c in self._clients(rotation.ref.id)]
        old = [a for a in ages if a < rotation.at - timedelta(seconds=1)]
        return Switched(rotation.ref, bool(ages) and not old,
                        (f"{len(ages) - len(old)} connection(s) since the rotation", f"{len(old)} from before it"))

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Remove every stored password but the new one, then kill connections older than the rotation."""
        keep = str(rotation.detail.get("keep", ""))
        removed = [h for h in self._hashes(rotation.ref.id, rotation.ref) if not (keep and h.startswith(keep))]
        if removed:
            self.rd.run("ACL SETUSER", "ACL", "SETUSER", rotation.ref.id, *("!" + h for h in removed))
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(), (f"{len(removed)} old password(s) removed",))
