"""Unguessable, self-verifying tracking tokens.

A token is 96 random bits followed by the first 64 bits of an HMAC-SHA256 of
them under the secret the desktop and the pixel server share, written in
lowercase base32: 32 characters of [a-z2-7], safe in URLs, file names and
spreadsheet cells. The server checks the MAC without knowing the register.
"""

import base64
import binascii
import hashlib
import hmac
import secrets

RANDOM_BYTES = 12
MAC_BYTES = 8
TOKEN_LENGTH = 32
SHORT_ID_LENGTH = 7
_MAC_LABEL = b"mailtracker-token-v1\x00"
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


def _mac(secret: bytes, random_part: bytes) -> bytes:
    return hmac.new(secret, _MAC_LABEL + random_part, hashlib.sha256).digest()[:MAC_BYTES]


def mint_token(secret: bytes) -> str:
    random_part = secrets.token_bytes(RANDOM_BYTES)
    raw = random_part + _mac(secret, random_part)
    return base64.b32encode(raw).decode("ascii").lower()


def verify_token(secret: bytes, token: str) -> bool:
    """True only for a token minted under ``secret``; constant time in the MAC."""
    if len(token) != TOKEN_LENGTH or not _ALPHABET.issuperset(token):
        return False
    try:
        raw = base64.b32decode(token.upper())
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(raw[RANDOM_BYTES:], _mac(secret, raw[:RANDOM_BYTES]))


def short_id(token: str) -> str:
    """The 7-character display form of a tag id (the seed script's short form)."""
    return token[:SHORT_ID_LENGTH]
