"""Tokens: unguessable, self-verifying, URL- and spreadsheet-safe."""

import base64
import hashlib
import hmac

from mailtracker.core.tokens import TOKEN_LENGTH, KeyedHmac, TokenVerifier, mint_token, short_id, verify_token

SECRET = b"s" * 32


def test_minted_token_verifies_under_its_secret():
    """A freshly minted token verifies, and only under the secret it was minted with."""
    token = mint_token(SECRET)
    assert verify_token(SECRET, token)
    assert not verify_token(b"t" * 32, token)


def test_token_shape_is_url_and_cell_safe():
    """Tokens are 32 lowercase base32 characters: no slash, dash or formula start."""
    token = mint_token(SECRET)
    assert len(token) == TOKEN_LENGTH
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_a_token_minted_under_any_secret_length_verifies_under_it():
    """The server's keyed check agrees with the minting HMAC for short, block-sized and long secrets."""
    for length in (16, 32, 63, 64, 65, 100):
        secret = bytes(range(length))
        token = mint_token(secret)
        assert verify_token(secret, token)
        assert not verify_token(secret[:-1] + b"x", token)


def test_keyed_hmac_is_hmac_sha256():
    """KeyedHmac(key, label).digest(m) is HMAC-SHA256(key, label + m), whatever the key's length."""
    for key in (b"", b"k", b"k" * 64, b"k" * 65, bytes(range(200))):
        for label, message in ((b"", b""), (b"label\x00", b"message"), (b"x" * 100, b"y" * 1000)):
            assert KeyedHmac(key, label).digest(message) == hmac.new(key, label + message, hashlib.sha256).digest()


def test_forged_tokens_are_rejected():
    """Changing any character, or guessing a MAC, fails verification."""
    token = mint_token(SECRET)
    for i in range(len(token)):
        swapped = "a" if token[i] != "a" else "b"
        assert not verify_token(SECRET, token[:i] + swapped + token[i + 1:])
    assert not verify_token(SECRET, "a" * 32)


def test_a_verifier_that_remembers_tokens_refuses_exactly_what_it_refused_before():
    """Remembering verified tokens (the server's) changes no answer: forged tokens, sent before,
    between and after the genuine ones and more of them than it remembers, are all refused, and
    every genuine token still verifies after the memory was emptied."""
    verifier = TokenVerifier(SECRET, remember=4)
    genuine = [mint_token(SECRET) for _ in range(10)]
    forged = [token[:-1] + ("a" if token[-1] != "a" else "b") for token in genuine]
    forged += [mint_token(b"t" * 32) for _ in range(20)]
    for _ in range(3):
        assert [verifier(token) for token in forged] == [False] * len(forged)
        assert [verifier(token) for token in genuine] == [True] * len(genuine)
        assert [verifier(token) for token in genuine[:3] + forged[:3]] == [True] * 3 + [False] * 3


def test_malformed_tokens_are_rejected_without_error():
    """Wrong length, wrong alphabet, path tricks and empty strings just fail."""
    for bad in ["", "abc", "A" * 32, "../../etc/passwd", mint_token(SECRET) + "a", "=" * 32, "é" * 32]:
        assert not verify_token(SECRET, bad)


def test_tokens_carry_at_least_80_random_bits():
    """Random part is 96 bits: 10,000 tokens never collide, even in their first 16 chars."""
    tokens = {mint_token(SECRET) for _ in range(10_000)}
    assert len(tokens) == 10_000
    raw = base64.b32decode(next(iter(tokens)).upper())
    assert len(raw) >= 10 + 8


def test_short_id_is_the_first_seven_characters():
    """The display form is the seed script's 7-character short id."""
    token = mint_token(SECRET)
    assert short_id(token) == token[:7]
