"""Fog registry files and the credential check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.auth import AuthError, ConfigError, FogRegistry, load_registry


def test_embedded_example_registers_the_demo_fog() -> None:
    registry = load_registry(None)
    fog = registry.authenticate("demo-fog", "Bearer demo-token")
    assert (fog.fog_id, fog.lots) == ("demo-fog", frozenset({"demo"}))
    assert registry.source.endswith("cloud.example.toml")


def test_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text('[fogs.north]\ntoken = "n0rth-secret"\nlots = ["n1", "n2"]\n'
                    '[fogs."south.1"]\ntoken = "s0uth-secret"\nlots = ["s"]\n')
    registry = load_registry(path)
    assert sorted(registry.fogs) == ["north", "south.1"]
    assert registry.fogs["north"].lots == frozenset({"n1", "n2"})


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[fogs.a]\ntoken = "12345678"\nlots = ["x"]\n[server]\nport = 1\n', "server", "unknown key"),
        ("", "fogs", "at least one"),
        ("fogs = 3\n", "fogs", "at least one"),
        ('[fogs."bad id"]\ntoken = "12345678"\nlots = ["x"]\n', 'fogs.bad id', "fog id must be"),
        ('[fogs]\na = 5\n', "fogs.a", "must be a table"),
        ('[fogs.a]\ntoken = "short"\nlots = ["x"]\n', "fogs.a.token", "at least 8"),
        ('[fogs.a]\ntoken = 12345678\nlots = ["x"]\n', "fogs.a.token", "at least 8"),
        ('[fogs.a]\nlots = ["x"]\n', "fogs.a.token", "at least 8"),
        ('[fogs.a]\ntoken = " 12345678"\nlots = ["x"]\n', "fogs.a.token", "surrounding spaces"),
        ('[fogs.a]\ntoken = "12345678"\nlots = []\n', "fogs.a.lots", "non-empty list"),
        ('[fogs.a]\ntoken = "12345678"\nlots = "x"\n', "fogs.a.lots", "non-empty list"),
        ('[fogs.a]\ntoken = "12345678"\nlots = [""]\n', "fogs.a.lots", "non-empty list"),
        ('[fogs.a]\ntoken = "12345678"\nlots = ["x"]\ntokn = "typo"\n', "fogs.a.tokn", "unknown key"),
        ('[fogs.a\ntoken = "12345678"\n', "(syntax)", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_registry(path)
    error = caught.value
    assert (error.path, error.key) == (str(path), key)
    assert problem in error.problem
    assert str(error).startswith(f"{path}: {key}: ")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_registry(tmp_path / "absent.toml")


@pytest.fixture
def demo() -> FogRegistry:
    return load_registry(None)


@pytest.mark.parametrize(
    ("fog_id", "header", "code"),
    [
        (None, "Bearer demo-token", "missing_credentials"),
        ("demo-fog", None, "missing_credentials"),
        ("demo-fog", "Basic demo-token", "bad_auth_header"),
        ("demo-fog", "Bearer ", "bad_auth_header"),
        ("nobody", "Bearer demo-token", "unknown_fog"),
        ("demo-fog", "Bearer demo-tokeN", "bad_token"),
        ("demo-fog", "Bearer demo-token-and-more", "bad_token"),
    ],
)
def test_refused_credentials(demo: FogRegistry, fog_id: Any, header: Any, code: str) -> None:
    with pytest.raises(AuthError) as caught:
        demo.authenticate(fog_id, header)
    assert caught.value.code == code


def test_unknown_fog_and_wrong_token_look_the_same_to_the_caller(demo: FogRegistry) -> None:
    messages = []
    for fog_id, token in (("nobody", "demo-token"), ("demo-fog", "wrong-token")):
        with pytest.raises(AuthError) as caught:
            demo.authenticate(fog_id, f"Bearer {token}")
        messages.append(str(caught.value).replace(repr(fog_id), "FOG"))
    assert messages[0] == messages[1]


def test_bearer_scheme_is_case_insensitive(demo: FogRegistry) -> None:
    assert demo.authenticate("demo-fog", "bearer demo-token").fog_id == "demo-fog"
