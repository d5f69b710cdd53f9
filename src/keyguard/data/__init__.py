"""The data inventory: which ciphertexts each key version protects."""
