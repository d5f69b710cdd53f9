"""``encrypt``, ``decrypt``, ``sign``, ``verify``, ``data-key``, ``rewrap`` (SPEC §4)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import typer

from keyguard.cli import context
from keyguard.cli.output import MAX_VERSION, JsonOption, console, emit, print_json
from keyguard.crypto.envelope import parse_context
from keyguard.errors import InvalidSignature, UsageError

KeyOption = typer.Option(..., "--key", "-k", help="Key name.")
ContextOption = typer.Option(None, "--context", "-c", help="Encryption context, a JSON object.")
InOption = typer.Option(None, "--in", help="Read input from FILE instead of stdin.")
OutOption = typer.Option(None, "--out", help="Write output to FILE (mode 0600) instead of stdout.")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not text", hint="pass the kg:v1:… form") from None


def register(app: typer.Typer) -> None:
    """Add the cryptographic operations to ``app``."""

    @app.command("encrypt")
    def encrypt(
        key: str = KeyOption,
        context_json: str | None = ContextOption,
        source: Path | None = InOption,
        out: Path | None = OutOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Encrypt stdin under the key's active version; print the ciphertext."""
        vault = context.vault()
        plaintext = context.read_input(source)
        ciphertext, version = vault.encrypt(context.principal(vault), key, plaintext, parse_context(context_json))
        if as_json:
            print_json({"key": key, "version": version, "ciphertext": ciphertext})
        else:
            context.write_output((ciphertext + "\n").encode(), out)

    @app.command("decrypt")
    def decrypt(
        context_json: str | None = ContextOption,
        source: Path | None = InOption,
        out: Path | None = OutOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Decrypt a ciphertext from stdin; print the plaintext bytes."""
        vault = context.vault()
        ciphertext = _text(context.read_input(source), "ciphertext")
        plaintext, name, version = vault.decrypt(context.principal(vault), ciphertext, parse_context(context_json))
        if as_json:
            print_json(
                {
                    "key": name,
                    "version": version,
                    "plaintext_b64": base64.b64encode(plaintext).decode(),
                }
            )
        else:
            context.write_output(plaintext, out)

    @app.command("rewrap")
    def rewrap(
        context_json: str | None = ContextOption,
        source: Path | None = InOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Re-encrypt a ciphertext from stdin under the active version."""
        vault = context.vault()
        ciphertext = _text(context.read_input(source), "ciphertext")
        new, version = vault.rewrap(context.principal(vault), ciphertext, parse_context(context_json))
        emit({"ciphertext": new, "version": version}, as_json, lambda: console.print(new))

    @app.command("sign")
    def sign(key: str = KeyOption, source: Path | None = InOption, as_json: bool = JsonOption) -> None:
        """Sign (or MAC) stdin with the active version; print a base64 signature."""
        vault = context.vault()
        signature, version = vault.sign(context.principal(vault), key, context.read_input(source))
        b64 = base64.b64encode(signature).decode()
        emit({"key": key, "version": version, "signature": b64}, as_json, lambda: console.print(b64))

    @app.command("verify")
    def verify(
        key: str = KeyOption,
        signature: str = typer.Option(..., "--signature", "-s", help="Base64 signature."),
        version: int | None = typer.Option(None, "--version", "-v", min=1, max=MAX_VERSION, help="Only this version."),
        source: Path | None = InOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Verify a signature over stdin: exit 0 when valid, 5 when not."""
        vault = context.vault()
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSignature("signature is not valid base64") from None
        used = vault.verify(context.principal(vault), key, context.read_input(source), raw, version)
        emit(
            {"key": key, "version": used, "valid": True},
            as_json,
            lambda: console.print(f"valid (version {used})"),
        )

    @app.command("data-key")
    def data_key(key: str = KeyOption, context_json: str | None = ContextOption, as_json: bool = JsonOption) -> None:
        """A fresh 256-bit data key: plaintext (base64) and wrapped under the key."""
        vault = context.vault()
        dek, wrapped, version = vault.generate_data_key(context.principal(vault), key, parse_context(context_json))
        doc = {
            "key": key,
            "version": version,
            "plaintext_b64": base64.b64encode(dek).decode(),
            "ciphertext": wrapped,
        }
        emit(
            doc,
            as_json,
            lambda: console.print(f"plaintext_b64: {doc['plaintext_b64']}\nciphertext: {wrapped}"),
        )
