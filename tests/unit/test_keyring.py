"""Keyring parsing, key generation and the ``boson keys generate`` command."""

from __future__ import annotations

import argparse
import base64
import pickle
import re
from typing import Any

import pytest
from pydantic import SecretStr

from boson.commands import keys as keys_command
from boson_shared.contract.keyring import KEY_BYTES, Keyring, generate_key_spec
from boson_shared.errors import ConfigError, UnknownKeyError
from boson_shared.settings import BosonSettings


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def test_parse_single_key_is_active() -> None:
    ring = Keyring.parse(f"a:{b64(KEY_A)}")
    assert ring.active_key_id == "a"
    assert ring.key("a") == KEY_A
    assert ring.key_ids == ("a",)


def test_first_listed_is_active_by_default_and_all_decrypt() -> None:
    ring = Keyring.parse(f"new:{b64(KEY_B)}, old:{b64(KEY_A)}")
    assert ring.active_key_id == "new"
    assert set(ring) == {"new", "old"}
    assert len(ring) == 2
    assert "old" in ring
    assert ring.key("old") == KEY_A


def test_explicit_active_key_id() -> None:
    ring = Keyring.parse(f"a:{b64(KEY_A)},b:{b64(KEY_B)}", active_key_id="b")
    assert ring.active_key_id == "b"


def test_urlsafe_base64_is_accepted() -> None:
    key = bytes([0xFB, 0xFF] * 16)
    ring = Keyring.parse(f"u:{base64.urlsafe_b64encode(key).decode()}")
    assert ring.key("u") == key


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_unpadded_base64_is_accepted(encode: Any) -> None:
    # Decided rule (wire-format §7): the '=' padding is optional.
    key = bytes([0xFB, 0xFF] * 16)
    text = encode(key).decode()
    assert text.endswith("=")
    assert Keyring.parse(f"u:{text.rstrip('=')}").key("u") == key
    assert Keyring.parse(f"u:{text}").key("u") == key


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty"),
        (f"a:{b64(KEY_A)},", "entry 2 is empty"),
        (b64(KEY_A), "no ':'"),
        (f"bad id:{b64(KEY_A)}", "id before ':'"),
        (f"{'x' * 33}:{b64(KEY_A)}", "id before ':'"),
        (f"a:{b64(KEY_A)},a:{b64(KEY_B)}", "listed twice"),
        ("a:not*base64!", "not valid base64"),
        (f"a:{b64(KEY_A)[:-3]}", "not valid base64"),  # 41 characters: no padding fixes it
        (f"a:{b64(KEY_A)}==", "not valid base64"),  # too much padding
        (f"a:{b64(KEY_A[:31])}", "32 bytes"),
    ],
)
def test_bad_specs_are_config_errors(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Keyring.parse(spec)


def test_unknown_active_key_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'zz' is not in the keyring"):
        Keyring.parse(f"a:{b64(KEY_A)}", active_key_id="zz")


def test_active_key_id_that_is_not_an_id_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        Keyring.parse(f"a:{b64(KEY_A)}", active_key_id=b64(KEY_B))
    assert b64(KEY_B) not in str(caught.value)


def test_constructor_validates_ids_and_lengths() -> None:
    with pytest.raises(ConfigError):
        Keyring({})
    with pytest.raises(ConfigError):
        Keyring({"a b": KEY_A})
    with pytest.raises(ConfigError, match="32 bytes"):
        Keyring({"a": b"short"})


def test_unknown_key_lookup_names_the_id() -> None:
    ring = Keyring({"a": KEY_A})
    with pytest.raises(UnknownKeyError, match="'nope'"):
        ring.key("nope")


def test_repr_shows_ids_only() -> None:
    ring = Keyring({"a": KEY_A, "b": KEY_B})
    text = repr(ring) + str(ring)
    assert "a" in text
    assert "b" in text
    for key in (KEY_A, KEY_B):
        assert key.hex() not in text
        assert b64(key) not in text
        assert repr(key) not in text


def test_keyring_refuses_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Keyring({"a": KEY_A}))


def test_ephemeral_ring_has_one_fresh_key() -> None:
    first, second = Keyring.ephemeral(), Keyring.ephemeral()
    assert len(first) == 1
    assert len(first.key(first.active_key_id)) == KEY_BYTES
    assert first.key(first.active_key_id) != second.key(second.active_key_id)


def test_from_settings() -> None:
    settings = BosonSettings(keys=SecretStr(f"a:{b64(KEY_A)},b:{b64(KEY_B)}"), active_key_id="b")
    ring = Keyring.from_settings(settings)
    assert ring.active_key_id == "b"
    assert ring.key("a") == KEY_A


@pytest.mark.parametrize("keys", [None, SecretStr(""), SecretStr("  ")])
def test_from_settings_without_keys_is_a_config_error(keys: SecretStr | None) -> None:
    with pytest.raises(ConfigError, match="boson keys generate"):
        Keyring.from_settings(BosonSettings(keys=keys))


def test_generated_spec_parses_and_default_id_has_date_and_suffix() -> None:
    spec = generate_key_spec()
    key_id, _, encoded = spec.partition(":")
    assert re.fullmatch(r"k\d{8}-[0-9a-f]{6}", key_id)
    ring = Keyring.parse(spec)
    assert ring.active_key_id == key_id
    assert base64.b64decode(encoded) == ring.key(key_id)
    assert generate_key_spec() != spec


def test_generated_spec_with_explicit_id() -> None:
    assert generate_key_spec("prod-2").startswith("prod-2:")
    with pytest.raises(ConfigError):
        generate_key_spec("not valid!")


def test_generated_specs_combine_into_a_ring() -> None:
    spec = ",".join((generate_key_spec("one"), generate_key_spec("two")))
    assert Keyring.parse(spec).key_ids == ("one", "two")


def run_keys_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="boson")
    keys_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_keys_generate_prints_a_settings_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_keys_command(["keys", "generate", "--id", "ops-1"]) == 0
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert line.startswith("ops-1:")
    assert Keyring.parse(line).active_key_id == "ops-1"
    assert "BOSON_KEYS" in captured.err
    assert "BOSON_ACTIVE_KEY_ID=ops-1" in captured.err
    settings = BosonSettings(keys=SecretStr(line))
    assert Keyring.from_settings(settings).key_ids == ("ops-1",)


def test_keys_generate_default_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_keys_command(["keys", "generate"]) == 0
    assert re.fullmatch(r"k\d{8}-[0-9a-f]{6}:\S{44}", capsys.readouterr().out.strip())


def test_keys_without_action_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_keys_command(["keys"]) == 2
    assert "generate" in capsys.readouterr().out


def test_keys_generate_rejects_a_bad_id() -> None:
    with pytest.raises(ConfigError):
        run_keys_command(["keys", "generate", "--id", "no spaces"])


def test_two_generated_keys_differ() -> None:
    assert generate_key_spec("a") != generate_key_spec("a")
