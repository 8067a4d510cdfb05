from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relier.core.exceptions import PayloadIntegrityError
from relier.core.settings import Settings
from relier.envelope import Envelope, Headers, Keyring, open_envelope, peek_task_name, seal
from relier.envelope.sealing import DIGEST_SIZE, FORMAT, FORMAT_DIGEST, MAGIC

KEYS = Keyring([("k1", b"0123456789abcdef0123"), ("k0", b"fedcba9876543210fedc")])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def make(args: list[Any], kwargs: dict[str, Any]) -> Envelope:
    return Envelope.new("billing.send_invoice", "id-1", args, kwargs, producer="h:1",
                        trace={"traceparent": "00-abc-def-01"})


@settings(max_examples=300)
@given(st.lists(json_values, max_size=5), st.dictionaries(st.text(max_size=12), json_values,
                                                          max_size=5))
def test_any_json_arguments_round_trip(args: list[Any], kwargs: dict[str, Any]) -> None:
    env = make(args, kwargs)
    opened = open_envelope(seal(env, KEYS), KEYS)
    assert opened == env
    assert opened.args == args
    assert opened.kwargs == kwargs


@settings(max_examples=300)
@given(st.data(), st.sampled_from(["signed", "unsigned"]))
def test_any_single_byte_change_is_detected(data: st.DataObject, mode: str) -> None:
    # Signed or not (development mode: a digest), no single-byte change goes unnoticed.
    keyring = KEYS if mode == "signed" else Keyring()
    fixed = Envelope("t.x", "id-1", 1, ["INV-1", 42], {"force": True}, Headers(1.5, "h:1"))
    raw = seal(fixed, keyring)
    index = data.draw(st.integers(0, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = raw[:index] + bytes([raw[index] ^ flip]) + raw[index + 1:]
    with pytest.raises(PayloadIntegrityError) as info:
        open_envelope(tampered, keyring)
    assert info.value.raw == tampered


def test_unsigned_envelopes_carry_a_digest_by_default() -> None:
    raw = seal(make(["INV-1"], {}), Keyring())
    assert raw[:4] == MAGIC + bytes((FORMAT_DIGEST, 0))
    body = raw[4 + DIGEST_SIZE:]
    assert raw[4:4 + DIGEST_SIZE] == hashlib.blake2b(raw[2:4] + body, digest_size=16).digest()
    assert open_envelope(raw, Keyring()).args == ["INV-1"]


def test_one_changed_character_of_an_argument_is_refused_without_keys() -> None:
    raw = seal(make(["INV-1"], {"amount": 5}), Keyring())
    tampered = raw.replace(b"INV-1", b"INV-2")
    assert tampered != raw
    with pytest.raises(PayloadIntegrityError, match="digest mismatch") as info:
        open_envelope(tampered, Keyring(accept_legacy=True))
    assert info.value.raw == tampered


def test_legacy_envelope_without_digest_needs_accept_legacy() -> None:
    body = msgspec.json.encode(make(["old"], {}))
    legacy = MAGIC + bytes((FORMAT, 0)) + body
    assert open_envelope(legacy, Keyring(accept_legacy=True)).args == ["old"]
    with pytest.raises(PayloadIntegrityError, match=r"without a digest.*RELIER_ACCEPT_UNSIGNED"):
        open_envelope(legacy, Keyring())
    with pytest.raises(PayloadIntegrityError, match="unsigned envelope while"):
        open_envelope(legacy, Keyring([("k1", b"0123456789abcdef0123")], accept_legacy=True))


@pytest.mark.parametrize("accept", [True, False])
def test_keyring_from_settings_follows_accept_unsigned(accept: bool) -> None:
    s = Settings.load({"RELIER_ACCEPT_UNSIGNED": str(accept).lower()}, env_file=None)
    assert Keyring.from_settings(s).accept_legacy is accept


def test_digest_envelope_with_a_key_id_is_refused() -> None:
    raw = seal(make([], {}), KEYS)
    forged = raw[:2] + bytes((FORMAT_DIGEST,)) + raw[3:]
    with pytest.raises(PayloadIntegrityError, match="digest envelope with a key id"):
        open_envelope(forged, KEYS)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_integrity_errors(raw: bytes) -> None:
    for keyring in (KEYS, Keyring(), Keyring(accept_legacy=True)):
        try:
            open_envelope(raw, keyring)
        except PayloadIntegrityError as exc:
            kept = exc.raw
        else:
            continue
        assert kept == raw


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_valid_prefix_with_garbage_body_raises_integrity_error(body: bytes) -> None:
    for raw in (b"RL\x01\x00" + body, b"RL\x01\x02k1" + b"\x00" * 32 + body,
                b"RL\x02\x00" + b"\x00" * 16 + body):
        with pytest.raises(PayloadIntegrityError):
            open_envelope(raw, Keyring(accept_legacy=True))


def test_rotation_first_key_signs_all_verify() -> None:
    old = Keyring([("k0", b"fedcba9876543210fedc")])
    signed_by_old = seal(make([], {}), old)
    assert open_envelope(signed_by_old, KEYS).task == "billing.send_invoice"
    assert signed_by_old[4:6] == b"k0"
    assert seal(make([], {}), KEYS)[4:6] == b"k1"
    with pytest.raises(PayloadIntegrityError, match=r"'k1'.*add it to RELIER_SIGNING_KEYS"):
        open_envelope(seal(make([], {}), KEYS), old)


def test_wrong_secret_for_same_kid_fails() -> None:
    other = Keyring([("k1", b"not-the-same-secret!")])
    with pytest.raises(PayloadIntegrityError, match="signature mismatch"):
        open_envelope(seal(make([1], {}), other), KEYS)


def test_development_mode_signs_nothing_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    dev = Keyring()
    with caplog.at_level(logging.WARNING, logger="relier.envelope"):
        raw = seal(make([1], {}), dev)
        seal(make([2], {}), dev)
    assert caplog.text.count("NOT signed") == 1
    assert open_envelope(raw, dev).args == [1]
    with pytest.raises(PayloadIntegrityError, match="unsigned envelope"):
        open_envelope(raw, KEYS)


def test_non_bytes_input_is_an_integrity_error() -> None:
    with pytest.raises(PayloadIntegrityError, match="expected bytes"):
        open_envelope("text", KEYS)  # type: ignore[arg-type]


def test_peek_task_name_never_raises() -> None:
    assert peek_task_name(seal(make([], {}), KEYS)) == "billing.send_invoice"
    assert peek_task_name(seal(make([], {}), Keyring())) == "billing.send_invoice"
    assert peek_task_name(b"junk") == "unknown"


def test_encoding_is_compact() -> None:
    raw = seal(Envelope.new("t.small", "0123456789abcdef0123456789abcdef", ["INV-1"], {}), KEYS)
    assert len(raw) < 134, len(raw)  # 4 bytes of them the expiry (",0.0")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "nan"),
        ({1: "x"}, "str keys"),
        ({"when": object()}, "argument 0\\['when'\\] is a object"),
        ({1, 2}, "is a set"),
    ],
)
def test_non_json_arguments_are_refused_naming_them(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Envelope.new("t", "i", [value], {})


@given(st.binary(min_size=1, max_size=100), st.binary(max_size=300))
def test_mac_is_standard_hmac_sha256(secret: bytes, message: bytes) -> None:
    import hmac

    assert Keyring([("k", secret)]).mac("k", message) == hmac.digest(secret, message, "sha256")
