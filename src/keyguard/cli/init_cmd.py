"""``keyguard init``: create the vault's root of trust, or rotate it."""

from __future__ import annotations

import os

import typer

from keyguard.cli.output import JsonOption, YesOption, confirm, console, emit
from keyguard.config import Settings
from keyguard.runtime import open_engine
from keyguard.vault.roots import ROOT_KINDS, create_root
from keyguard.vault.service import Vault


def register(app: typer.Typer) -> None:
    """Add ``init`` to ``app``."""

    @app.command("init")
    def init(
        root: str = typer.Option("keyfile", "--root", help="Root of trust: " + ", ".join(ROOT_KINDS)),
        rotate_root: bool = typer.Option(False, "--rotate-root", help="Re-seal everything under a new root."),
        yes: bool = YesOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Initialise the vault in $KEYGUARD_HOME (or KEYGUARD_DATABASE_URL)."""
        settings = Settings.from_env()
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = open_engine(settings, create=True)
        if rotate_root:
            from keyguard.vault.rootrotate import make_new_root
            from keyguard.vault.rootrotate import rotate_root as do_rotate

            confirm(f"Re-seal every key under a new {root} root?", yes)
            env = dict(os.environ)
            report = do_rotate(engine, make_new_root(root, settings.home, env), env, kind=root)
            emit(
                report,
                as_json,
                lambda: console.print(
                    f"root rotated to {root} (generation {report['generation']}); "
                    f"{report['resealed']} sealed items moved"
                    + (" (the interrupted rotation was finished)" if report["resumed"] else "")
                ),
            )
            return
        new_root = create_root(root, settings.home)
        vault = Vault.initialize(engine, new_root)
        from keyguard.vault.principal import local_admin

        vault.record(local_admin(), "init", "ok", reason=f"root {root}")
        doc = {
            "home": str(settings.home),
            "root": root,
            "database": settings.database_url.split("://")[0],
        }
        emit(
            doc,
            as_json,
            lambda: console.print(f"vault initialised in {settings.home} (root: {root})"),
        )
