"""``python -m keyguard``."""

from keyguard.cli.main import run

run()
