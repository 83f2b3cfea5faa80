"""Events hash as RFC 8785 canonical JSON, and values JCS cannot encode are refused."""

from __future__ import annotations

import pytest

from keel.evidence.canonical import canonical_json
from keel.kernel.errors import InvalidInput


def test_keys_are_sorted_and_whitespace_dropped():
    assert canonical_json({"b": 1, "a": [True, None, "x"], "c": {"z": 1.5, "y": "é"}}) == (
        '{"a":[true,null,"x"],"b":1,"c":{"y":"é","z":1.5}}'.encode()
    )


def test_numbers_use_the_ecmascript_form():
    assert canonical_json([1.0, 1e21, 0.1, -0.0, 2**53 - 1]) == b"[1,1e+21,0.1,0,9007199254740991]"


@pytest.mark.parametrize(
    "value",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": 2**53},
        {"x": -(2**53)},
        {1: "non-string key"},
        {"x": object()},
        {"x": "\ud800"},
    ],
)
def test_values_rfc_8785_cannot_encode_are_invalid_input_on_the_event(value):
    with pytest.raises(InvalidInput) as caught:
        canonical_json(value)
    assert caught.value.fields["field"] == "event"


def test_nesting_too_deep_is_invalid_input():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInput):
        canonical_json(deep)
