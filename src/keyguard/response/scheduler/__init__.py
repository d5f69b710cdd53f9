"""Scheduled work of ``keyguard serve`` (SPEC §8): lease expiry and key rotation, on exactly one node.

:mod:`~keyguard.response.scheduler.leader` elects the node (a PostgreSQL advisory lock held on
its own connection; on SQLite, a file lock beside the database), :mod:`.rotation`
rotates due keys and re-wraps their data, and :mod:`.service` runs both in a thread.
"""
