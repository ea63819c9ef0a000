"""The secret the desktop and the pixel server share: made once, read by both.
"""

import base64
import binascii
import secrets
from pathlib import Path

from mailtracker.core.errors import SecretError
from mailtracker.core.files import write_file_atomically
from mailtracker.core.paths import Home

SECRET_BYTES = 32


def new_secret_text() -> bytes:
    """A new random secret, as the secret file holds it (base64 text and a newline)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)) + b"\n"


def create_secret(home: Home, force: bool = False) -> bool:
    """Write a new random secret unless one exists; True when one was written."""
    if home.secret_path.exists() and not force:
        return False
    write_file_atomically(home.secret_path, new_secret_text(), mode=0o600, replace_existing=force)
    return True


def read_secret(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise SecretError(f"no secret at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read the secret at {path}: {exc}") from None
    return parse_secret(text, f"at {path}")


def parse_secret(text: str, where: str) -> bytes:
    """The secret in a secret file's text; SecretError naming ``where`` ("at PATH", "in the
    pairing code") when it is malformed."""
    try:
        secret = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError):
        raise SecretError(f"the secret {where} is not base64 text as 'mailtracker init' writes it") from None
    if len(secret) < 16:
        raise SecretError(f"the secret {where} is too short ({len(secret)} bytes, need 16 or more)")
    return secret
