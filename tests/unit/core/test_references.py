from __future__ import annotations

import pytest

from modelyard.core.references import ModelRef
from modelyard.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/fraud@production", ModelRef("fraud", alias="production")),
        ("models:/fraud/3", ModelRef("fraud", version=3)),
        ("models:/fraud/latest", ModelRef("fraud")),
        ("models:/fraud", ModelRef("fraud")),
        ("fraud@staging", ModelRef("fraud", alias="staging")),
        ("fraud-v2.b/12", ModelRef("fraud-v2.b", version=12)),
        ("  fraud  ", ModelRef("fraud")),
    ],
    ids=["alias", "version", "latest", "bare-uri", "no-prefix-alias", "dots-dashes", "spaces"],
)
def test_parse(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "models:/", "models:/fraud/0", "models:/fraud/-1", "models:/fraud/x", "fr aud",
     "models:/fraud@", "models:/fraud@1abc", "models:/../etc/3", "models:/fraud@prod/1"],
)
def test_parse_rejects_with_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"must look like 'models:/NAME@ALIAS'"):
        ModelRef.parse(text)


def test_latest_is_not_an_alias() -> None:
    with pytest.raises(InvalidInputError, match="models:/NAME/latest"):
        ModelRef.parse("models:/fraud@latest")


@pytest.mark.parametrize("ref", ["models:/a@b", "models:/a/7", "models:/a/latest"])
def test_round_trip(ref: str) -> None:
    assert str(ModelRef.parse(ref)) == ref
