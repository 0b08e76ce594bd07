from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.core.names import validate_alias, validate_model_name
from modelyard.errors import InvalidInputError


@pytest.mark.parametrize("name", ["fraud", "Fraud_2", "a", "x.y-z", "9lives", "a" * 128])
def test_valid_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    "name", ["", " ", "-lead", ".hidden", "with space", "slash/name", "a@b", "a" * 129, "end.",
             "ünïcode", None, 3],
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(InvalidInputError, match="The model name must be"):
        validate_model_name(name)


@pytest.mark.parametrize("alias", ["production", "staging", "_x", "champion-2"])
def test_valid_aliases(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize("alias", ["", "1st", "has space", "a.b", "a" * 65])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(InvalidInputError, match="The alias must be"):
        validate_alias(alias)


def test_latest_is_reserved() -> None:
    with pytest.raises(InvalidInputError, match="reserved"):
        validate_alias("latest")


@given(st.text(max_size=200))
def test_name_validation_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidInputError):
        assert validate_model_name(text) == text
