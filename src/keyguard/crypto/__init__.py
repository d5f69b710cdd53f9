"""The hazmat layer: pure functions over ``cryptography``; no storage, no I/O, no globals."""
