"""The pairing code: one line that setup-server prints and ``mailtracker init --pair`` takes,
so a desktop gets its server's address and the shared secret in one paste instead of a
hand-copied file.

``mtpair1.`` then base64url (no padding) of a JSON object: ``url`` (the server's public https
address), ``pull`` (whether it serves the hits files to the desktop's pull) and ``secret`` (the
secret file's text). It holds the secret: whoever has it can mint tags and pull the hits, as
with the secret file itself.
"""

import base64
import binascii
import json
from dataclasses import dataclass

from mailtracker.core.errors import ConfigError
from mailtracker.core.secret import parse_secret

PREFIX = "mtpair1."


@dataclass(frozen=True)
class Pairing:
    server_url: str
    pull: bool
    secret_text: bytes


def pairing_code(server_url: str, secret_text: bytes, pull: bool) -> str:
    document = {"url": server_url, "pull": bool(pull), "secret": secret_text.decode("ascii").strip()}
    payload = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return PREFIX + base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def read_pairing_code(code: str) -> Pairing:
    """The pairing in ``code``; ConfigError naming what is wrong with it."""
    code = code.strip()
    if not code.startswith(PREFIX):
        raise ConfigError(f"this is not a pairing code: it should start with '{PREFIX}' "
                          "(setup-server prints it at its end)")
    body = code[len(PREFIX):]
    try:
        document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        pairing = Pairing(str(document["url"]), bool(document["pull"]), str(document["secret"]).encode("ascii") + b"\n")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
        raise ConfigError("the pairing code is cut short or mistyped: copy the whole line setup-server "
                          "printed") from None
    parse_secret(pairing.secret_text.decode("ascii"), "in the pairing code")
    if not pairing.server_url.startswith("https://"):
        raise ConfigError(f"the pairing code names {pairing.server_url!r}, not an https:// address")
    return pairing
