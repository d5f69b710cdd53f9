"""One thin module per noun: parse, call the vault, shape the response."""
