"""Hardening policy checks (seed step 6)."""
