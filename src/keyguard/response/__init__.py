"""Leaked-key response: the steps that act on the vault, and the one-command playbook."""
