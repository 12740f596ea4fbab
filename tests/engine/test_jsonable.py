"""runtime._jsonable: data as a JSON round trip gives it back, by a copy when the data is plain already."""

from __future__ import annotations

import json
import math
from datetime import date
from enum import StrEnum

import pytest

from engine import runtime, spiff


class Colour(StrEnum):
    RED = "red"


def _round_trip(data):
    return json.loads(json.dumps(data, default=spiff._json_default))


@pytest.mark.parametrize("data", [
    {"a": 1, "b": [1, {"c": 2.5, "d": None, "e": True}], "f": "text", "g": float("inf")},
    {"t": (1, 2)}, {1: "int key"}, {"when": date(2030, 1, 2)}, {"c": Colour.RED}, {"deep": [[[{"x": [1]}]]]},
])
def test_the_result_is_what_a_json_round_trip_gives(data):
    got = runtime._jsonable(data)
    assert got == _round_trip(data)
    assert json.dumps(got) == json.dumps(_round_trip(data))
    assert [type(v) for v in got.values()] == [type(v) for v in _round_trip(data).values()]


def test_plain_data_is_copied_not_shared():
    data = {"items": [1, {"n": [2]}]}
    got = runtime._jsonable(data)
    got["items"][1]["n"].append(3)
    got["items"].append(4)
    assert data == {"items": [1, {"n": [2]}]}


def test_nan_comes_back_as_a_new_nan_as_from_json():
    data = {"n": [float("nan")]}
    got = runtime._jsonable(data)
    assert math.isnan(got["n"][0]) and got["n"] is not data["n"] and got["n"][0] is not data["n"][0]


def test_circular_data_fails_as_json_does():
    data: dict = {"a": []}
    data["a"].append(data)
    with pytest.raises(ValueError, match="Circular reference"):
        runtime._jsonable(data)
