"""Run a vault operation for a request, releasing its result only once its audit events are durable.

Symmetric operations on a cached key cost a few microseconds, so they run on
the event loop itself; anything that may need the database or heavy
arithmetic (a key not yet cached, RSA or EC keys) runs in the threadpool. In
both cases the audit log is in deferred mode: the events are queued for the
background writer, which commits the events of every request in flight
together (group commit), and the loop awaits their durability before the
answer, or the domain error, goes out. If an event cannot be written the
answer is 503 whatever the operation did: no audit record, no result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from keyguard.audit.log import deferred_appends, loop_appends
from keyguard.vault.service import Vault

T = TypeVar("T")


def _is_cheap(vault: Vault, key: str) -> bool:
    info = vault.cached_key_info(key)
    return info is not None and info.is_symmetric


def _call(fn: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001 - re-raised once the audit is durable
        return None, exc


def _run(fn: Callable[[], T]) -> tuple[T | None, BaseException | None, list[Future[dict[str, Any]]]]:
    with deferred_appends() as futures:
        return (*_call(fn), futures)


async def vault_call(vault: Vault, key: str, fn: Callable[[], T]) -> T:
    """``fn()`` (a vault operation on ``key``), returned once its audit events are durable."""
    if _is_cheap(vault, key):
        with loop_appends() as waiters:
            result, error = _call(fn)
        if len(waiters) == 1:  # the usual case: one event, no gather machinery
            await waiters[0]
        elif waiters:
            await asyncio.gather(*waiters)
    else:
        result, error, futures = await run_in_threadpool(_run, fn)
        if len(futures) == 1:
            await asyncio.wrap_future(futures[0])
        elif futures:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    if error is not None:
        raise error
    return result  # type: ignore[return-value]
