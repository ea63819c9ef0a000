"""Unguessable, self-verifying tracking tokens.

A token is 96 random bits followed by the first 64 bits of an HMAC-SHA256 of
them under the secret the desktop and the pixel server share, written in
lowercase base32: 32 characters of [a-z2-7], safe in URLs, file names and
spreadsheet cells. The server checks the MAC without knowing the register.
"""

import base64
import hashlib
import hmac
import re
import secrets
from typing import Optional

from mailtracker.core.memory import Memory

RANDOM_BYTES = 12
MAC_BYTES = 8
TOKEN_LENGTH = 32
SHORT_ID_LENGTH = 7
_MAC_LABEL = b"mailtracker-token-v1\x00"
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_TOKEN_SHAPE = re.compile("[a-z2-7]{%d}" % TOKEN_LENGTH)  # the fold asks this of every row of tags.csv


def _mac(secret: bytes, random_part: bytes) -> bytes:
    return hmac.new(secret, _MAC_LABEL + random_part, hashlib.sha256).digest()[:MAC_BYTES]


class KeyedHmac:
    """HMAC-SHA256 under one key, of messages that all start with one label: the pixel
    server's hot path. The key and the label are absorbed once; each message then costs
    two copies of a hash state (``hmac.HMAC.copy`` does the same through Python objects,
    at twice the time)."""

    _BLOCK = 64  # SHA-256's block size

    def __init__(self, key: bytes, label: bytes = b""):
        if len(key) > self._BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(self._BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + label)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def mint_token(secret: bytes) -> str:
    random_part = secrets.token_bytes(RANDOM_BYTES)
    raw = random_part + _mac(secret, random_part)
    return base64.b32encode(raw).decode("ascii").lower()


# Lowercase base32 digits to the digits int(..., 32) reads: one C call decodes a token.
_TO_BASE32_INT = str.maketrans("abcdefghijklmnopqrstuvwxyz234567", "0123456789abcdefghijklmnopqrstuv")


def base32_value(text: str) -> Optional[int]:
    """The number that unpadded lowercase base32 ``text`` writes (its first character the
    most significant); None for anything else, so that two texts never give one value
    (int() alone would also read digits, capitals and spaces)."""
    if not text or not _ALPHABET.issuperset(text):
        return None
    return int(text.translate(_TO_BASE32_INT), 32)


class TokenVerifier:
    """``verify_token`` for one secret, keyed once: the pixel server's hot path.

    With ``remember``, up to that many tokens that verified are remembered and not checked
    again (the memory is emptied when full). Only tokens whose MAC checked are ever
    remembered: any other token, however close to one remembered, is checked in full.
    """

    def __init__(self, secret: bytes, remember: int = 0):
        self._mac = KeyedHmac(secret, _MAC_LABEL).digest
        self._verified = Memory(remember)

    def __call__(self, token: str) -> bool:
        if token in self._verified:
            return True
        value = base32_value(token) if len(token) == TOKEN_LENGTH else None
        if value is None:
            return False
        raw = value.to_bytes(RANDOM_BYTES + MAC_BYTES, "big")
        if not hmac.compare_digest(raw[RANDOM_BYTES:], self._mac(raw[:RANDOM_BYTES])[:MAC_BYTES]):
            return False
        self._verified.keep(token, True)
        return True


def verify_token(secret: bytes, token: str) -> bool:
    """True only for a token minted under ``secret``; constant time in the MAC."""
    return TokenVerifier(secret)(token)


def is_token_shaped(text: str) -> bool:
    """Whether ``text`` has a token's length and alphabet (says nothing of its MAC)."""
    return _TOKEN_SHAPE.fullmatch(text) is not None


def short_id(token: str) -> str:
    """The 7-character display form of a tag id (the seed script's short form)."""
    return token[:SHORT_ID_LENGTH]


# `mailtracker doctor --server` sends a hit on a reserved tag: its random part is
# all zero bits, so the fold can tell it apart without the secret and never counts it.
PROBE_TAG_PREFIX = "a" * 19


def probe_token(secret: bytes) -> str:
    """The reserved tag that checks the server end to end: it verifies, but is never an open."""
    random_part = bytes(RANDOM_BYTES)
    return base64.b32encode(random_part + _mac(secret, random_part)).decode("ascii").lower()
