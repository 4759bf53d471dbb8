"""The guard's fast path (udfs/registry.py `guard`): a call of a function whose arguments are
all numbers, with every value a finite float, goes straight to the implementation. It must
answer exactly what the converting path answers for the same values; that path is reached
with the same numbers passed as 1x1 ranges (nested lists), which the guard unwraps to the
very same floats. The error behaviour for text, blanks, errors and zero denominators is held
by test_udf_inputs and test_hostile; here, that the fast path never changes an answer."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import udfs
from conftest import examples
from udfs.registry import NUMBER, OPTIONAL, REGISTRY

FUNCTIONS = udfs.excel_functions()
NUMERIC = sorted(name for name, spec in REGISTRY.items()
                 if spec.args and all(arg.kind in (NUMBER, OPTIONAL) for arg in spec.args))
finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.05, 1e-300, 1e300]))


def _answer(call):
    try:
        return ("value", call())
    except Exception as exc:   # noqa: BLE001 - strict mode raises a bug: both paths must raise the same
        return ("raised", type(exc))


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


def test_there_are_numeric_functions_to_hold():
    assert len(NUMERIC) >= 10


@pytest.mark.parametrize("name", NUMERIC)
def test_the_fast_path_answers_what_the_converting_path_answers(name):
    function, count = FUNCTIONS[name], len(REGISTRY[name].args)

    @settings(max_examples=examples(60), deadline=None)
    @given(values=st.lists(finite, min_size=count, max_size=count))
    def check(values):
        fast = _answer(lambda: function(*values))
        converted = _answer(lambda: function(*[[v] for v in values]))
        assert fast[0] == converted[0] and _same(fast[1], converted[1]), (values, fast, converted)
    check()
