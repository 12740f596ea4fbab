"""check_plain: JSON-plain data in, a message naming the variable and the rule out."""

import pytest

from engine.errors import DataInvalid, InvalidInput
from engine.values import check_plain


def test_plain_data_is_returned_unchanged():
    data = {"name": "Aino", "n": 3, "x": 1.5, "ok": True, "none": None, "order": {"items": [1, "a", []]}}
    assert check_plain(data, what="retry data") is data


@pytest.mark.parametrize(("data", "variable", "words"), [
    ({"order": {"items": [1, 2, 3, {1, 2}]}}, "order.items[3]", "is a set"),
    ({"x": (i for i in [])}, "x", "is a generator"),
    ({"f": len}, "f", "is a function"),
    ({"t": (1, 2)}, "t", "is a tuple"),
    ({"o": object()}, "o", "object"),
    ({"d": {1: "a"}}, "d", "not text"),
    ({"x": {"typename": "datetime", "value": "2026"}}, "x.typename", "reserved key"),
    ({"typename": "x"}, "typename", "reserved key"),
    ({"a b": [float("nan")]}, "'a b'[0]", "JSON cannot hold"),
    ({"big": 10 ** 5000}, "big", "beyond 64 bits"),
    ({"n": [2 ** 63]}, "n[0]", "beyond 64 bits"),
    ({"n": -(2 ** 63) - 1}, "n", "beyond 64 bits"),
    ({"name": "Äi\ud800ti"}, "name", "lone surrogate"),
    ({"d": {"k\udfff": 1}}, "d", "lone surrogate"),
    ({"s": "x" * 2_000_000}, "s", "larger than 1,000,000 bytes"),
])
def test_data_that_is_not_plain_is_refused_naming_the_variable(data, variable, words):
    with pytest.raises(DataInvalid) as caught:
        check_plain(data, what="retry data")
    assert caught.value.variable == variable
    assert words in str(caught.value) and str(caught.value).startswith("retry data: ")
    assert isinstance(caught.value, InvalidInput)


def test_whole_numbers_are_64_bit_at_both_ends():
    edges = {"high": 2 ** 63 - 1, "low": -(2 ** 63), "small": [0, -1, 1]}
    assert check_plain(edges, what="retry data") == edges


def test_a_variable_name_fits_its_column():
    check_plain({"v" * 200: 1, "nested": {"k" * 500: 1}}, what="script result")  # only variables are rows
    with pytest.raises(DataInvalid, match=r"^script result: 'v{40}…' is a name of 201 characters; a variable's "
                                          r"name can have at most 200$"):
        check_plain({"ok": 1, "v" * 201: 1}, what="script result")


def test_depth_and_size_limits_can_be_set():
    deep = inner = {}
    for _ in range(10):
        inner["a"] = inner = {}
    check_plain(deep, what="payload")
    with pytest.raises(DataInvalid, match="deeper than 5 levels"):
        check_plain(deep, what="payload", max_depth=5)
    with pytest.raises(DataInvalid, match="larger than 100 bytes"):
        check_plain({"s": "é" * 60}, what="payload", max_bytes=100)


def test_very_deep_data_is_refused_without_recursion_error():
    deep = inner = []
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(DataInvalid, match="deeper than 32"):
        check_plain({"x": deep}, what="payload")


def test_the_data_limits_are_settings_applied_to_every_check():
    from engine import limits, values
    from engine.config import Settings
    from engine.errors import DataInvalid

    settings = Settings.from_env({"POLKU_DATA_MAX_BYTES": "100", "POLKU_DATA_MAX_DEPTH": "2"})
    try:
        limits.configure(settings)
        with pytest.raises(DataInvalid, match="larger than 100 bytes"):
            values.check_plain({"text": "x" * 200}, what="form")
        with pytest.raises(DataInvalid, match="deeper than 2 levels"):
            values.check_plain({"a": {"b": {"c": [1]}}}, what="form")
        assert values.check_plain({"text": "x" * 50}, what="form")
    finally:
        limits.configure(Settings())
