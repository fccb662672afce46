"""``FernetReader`` opens exactly what ``Fernet.decrypt`` opens and refuses exactly what it refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apps.core.fernet_reader import FernetReader

KEY = Fernet.generate_key()


def _outcome(open_token, token: bytes) -> tuple[str, bytes | None]:
    try:
        return "opened", open_token(token)
    except InvalidToken:
        return "refused", None


def _same_outcome(token: bytes, *, key: bytes = KEY) -> tuple[str, bytes | None]:
    expected = _outcome(Fernet(key).decrypt, token)
    assert _outcome(FernetReader(key).open, token) == expected
    # a batch of one, and the token among good ones: opened alike, or the whole batch refused
    good = Fernet(key).encrypt(b"a good one")
    assert _outcome(lambda one: FernetReader(key).open_many([one])[0], token) == expected
    batch = _outcome(lambda one: b"|".join(FernetReader(key).open_many([good, one, good])), token)
    assert batch == (expected if expected[1] is None else ("opened", b"a good one|" + expected[1] + b"|a good one"))
    return expected


def _signed(body: bytes, *, key: bytes = KEY) -> bytes:
    """A token with a valid HMAC around ``body`` (version, timestamp, IV, ciphertext): only the key's
    holder can make one, so this is how a bad ciphertext gets past the HMAC check."""
    raw = base64.urlsafe_b64decode(key)
    return base64.urlsafe_b64encode(body + hmac.digest(raw[:16], body, "sha256"))


def _cbc_encrypted(padded: bytes, *, key: bytes = KEY) -> bytes:
    raw = base64.urlsafe_b64decode(key)
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(raw[16:]), modes.CBC(iv)).encryptor()
    return b"\x80" + (1234).to_bytes(8) + iv + encryptor.update(padded) + encryptor.finalize()


def test_opens_what_fernet_made_at_every_length_around_the_block_size():
    # given tokens of texts from empty to several blocks long, of random bytes and of unicode text
    rng = random.Random(7)
    texts = [rng.randbytes(length) for length in range(0, 70)] + ["é ✓ 漢字 \u2028".encode() * 9]

    for text in texts:
        # when Fernet made the token, then the reader opens the same text
        assert FernetReader(KEY).open(Fernet(KEY).encrypt(text)) == text


def test_one_reader_opens_a_whole_batch_in_order():
    texts = [f"item {i}: {'x' * i}".encode() for i in range(40)]
    tokens = [Fernet(KEY).encrypt(text) for text in texts]

    reader = FernetReader(KEY)

    assert [reader.open(token) for token in tokens] == texts


def test_open_many_opens_a_batch_of_every_length_as_fernet_does():
    # given tokens of plaintexts from empty to several blocks, some repeated, in random order
    rng = random.Random(7)
    texts = [rng.randbytes(rng.randrange(0, 70)) for _ in range(60)] + [b"", b"x" * 16, b"x" * 16]
    rng.shuffle(texts)
    tokens = [Fernet(KEY).encrypt(text) for text in texts]
    reader = FernetReader(KEY)

    # when one reader opens them as one batch, then each is its plaintext, in order, and as Fernet reads it
    assert reader.open_many(tokens) == texts == [Fernet(KEY).decrypt(token) for token in tokens]
    # and memoryviews (what PostgreSQL's bytea columns give) open the same
    assert reader.open_many([memoryview(token) for token in tokens]) == texts
    assert reader.open_many([]) == []


@pytest.mark.parametrize("bad_at", [0, 5, 9])
def test_open_many_refuses_a_batch_with_one_bad_token_and_spoils_nothing(bad_at):
    tokens = [Fernet(KEY).encrypt(b"tea %d" % i) for i in range(10)]
    # given a batch where one token carries a valid MAC around a ciphertext with broken padding
    tokens[bad_at] = _signed(_cbc_encrypted(b"x" * 15 + b"\x00"))
    reader = FernetReader(KEY)

    # when the batch is opened, then it is refused
    with pytest.raises(InvalidToken):
        reader.open_many(tokens)
    # and with a token of another key instead, refused too
    tokens[bad_at] = Fernet(Fernet.generate_key()).encrypt(b"not yours")
    with pytest.raises(InvalidToken):
        reader.open_many(tokens)
    # and the same reader opens the next batch and the next token
    assert reader.open_many([Fernet(KEY).encrypt(b"next")]) == [b"next"]
    assert reader.open(Fernet(KEY).encrypt(b"then")) == b"then"


def test_every_changed_byte_is_refused_as_fernet_refuses_it():
    # given a token, decoded, with one byte changed at each position (version, time, IV, ciphertext, MAC)
    data = base64.urlsafe_b64decode(Fernet(KEY).encrypt(b"the user likes tea"))
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        # when both open it, then both refuse it (the timestamp is under the MAC too)
        assert _same_outcome(base64.urlsafe_b64encode(bytes(changed))) == ("refused", None)


def test_malformed_text_is_treated_as_fernet_treats_it():
    token = Fernet(KEY).encrypt(b"tea")
    cases = [
        b"",
        b"not base64 at all!",
        b"gAAAAA",
        token[:-1],
        token[:-4],
        token[:40],
        token + b"A",
        token + b"AAAA",
        token.replace(b"-", b"+").replace(b"_", b"/"),  # the standard alphabet: its bytes are kept, as there
        token[:10] + b"\n" + token[10:],  # a byte outside the alphabet is skipped, as there
        token[:10] + b"*" + token[10:],
        token.decode().lower().encode(),
    ]
    outcomes = [_same_outcome(case) for case in cases]
    # the token with a skipped byte still opens: the reader follows Fernet there too
    assert outcomes[9] == ("opened", b"tea")
    assert outcomes[0] == ("refused", None)


def test_another_keys_token_is_refused():
    other = Fernet.generate_key()
    assert _same_outcome(Fernet(other).encrypt(b"tea")) == ("refused", None)


@pytest.mark.parametrize(
    "padded",
    [
        b"",  # no ciphertext at all
        b"x" * 15,  # a part block
        b"x" * 17,
        b"x" * 16,  # a whole block whose last byte is no padding length
        b"x" * 15 + b"\x00",  # padding length 0
        b"x" * 15 + b"\x11",  # padding length 17
        b"x" * 13 + b"\x01\x02\x03",  # inconsistent padding bytes
        b"x" * 30 + b"\x03\x02",
    ],
)
def test_a_signed_token_with_a_bad_ciphertext_is_refused_and_spoils_nothing(padded):
    # given a token with a valid MAC around a ciphertext Fernet refuses
    # (a part block cannot go through CBC: it is placed as it is, as a forger with the key could)
    body = _cbc_encrypted(padded) if len(padded) % 16 == 0 else b"\x80" + (1234).to_bytes(8) + os.urandom(16) + padded
    token = _signed(body)
    reader = FernetReader(KEY)

    # when it is opened, then both refuse it
    assert _same_outcome(token) == ("refused", None)
    with pytest.raises(InvalidToken):
        reader.open(token)
    # and the same reader opens the next good token (a part block never stays in its AES context)
    assert reader.open(Fernet(KEY).encrypt(b"next")) == b"next"


def test_a_signed_token_with_good_padding_opens():
    assert _same_outcome(_signed(_cbc_encrypted(b"hand made" + b"\x07" * 7))) == ("opened", b"hand made")


def test_random_tokens_and_their_mutations_agree_with_fernet():
    rng = random.Random(19)
    for _ in range(300):
        token = bytearray(Fernet(KEY).encrypt(rng.randbytes(rng.randrange(0, 50))))
        for _ in range(rng.randrange(0, 3)):
            token[rng.randrange(len(token))] = rng.choice(b"ABCxyz019-_=+/ \n")
        _same_outcome(bytes(token))


def test_a_key_that_is_not_a_fernet_key_is_refused():
    with pytest.raises(ValueError, match="32 url-safe"):
        FernetReader(base64.urlsafe_b64encode(b"short"))


def test_the_mac_is_the_keys_hmac_sha256_as_in_the_fernet_spec():
    # given the spec's construction by hand (a guard that _signed builds what Fernet checks)
    raw = base64.urlsafe_b64decode(KEY)
    data = base64.urlsafe_b64decode(Fernet(KEY).encrypt(b"tea"))
    assert hmac.new(raw[:16], data[:-32], hashlib.sha256).digest() == data[-32:]
