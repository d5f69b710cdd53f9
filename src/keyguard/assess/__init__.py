"""Damage assessment of a leaked key."""
