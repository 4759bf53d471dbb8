"""The formula language is parsed, never executed: nothing outside its whitelist gets through."""
from __future__ import annotations

import pytest

from udfs import formula as fx
from udfs.functions import GUARDED


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo x')", "a.b", "a[0]", "lambda: 1", "a if b else c", "a ** 2",
    "open('x')()", "a == b", "[a, b]", "prev(forecast(a))", "prev(a, b)", "prev()", "grow(a, rate=1)", "1 +", "True",
])
def test_rejects_anything_outside_the_language(text):
    with pytest.raises(fx.FormulaError):
        fx.parse(text)


@pytest.mark.parametrize("text,same", [
    ("prev(a + b)", "prev(a) + prev(b)"), ("prev(margin(a - b, c))", "margin(prev(a) - prev(b), prev(c))"),
    ("prev(prev(a))", None), ("prev(-a * 2)", "-prev(a) * 2"),
])
def test_prev_of_a_formula_reads_each_of_its_lines_a_year_earlier(text, same):
    tree = fx.parse(text)
    if same:
        assert tree == fx.parse(same)
    else:
        assert tree == fx.Ref("a", 2)
    assert fx.to_excel(fx.parse("prev(prev(a)) + prev(a)"), lambda k, lag: f"{k}{3 - lag}", str.upper) == "a1+a2"


def test_unknown_function_cannot_be_called():
    tree = fx.parse("system(a)")
    with pytest.raises(KeyError):
        fx.evaluate(tree, lambda k, lag: 1.0, GUARDED)


@pytest.mark.parametrize("text,exp", [
    ("a + b * c", 7.0), ("(a + b) * c", 9.0), ("-a + b", 1.0), ("a - (b - c)", 2.0), ("b / a", 2.0),
    ("prev(a)", 10.0), ("grow(prev(a), 0.5)", 15.0), ("a / z", "#DIV/0!"), ("a + t", "#VALUE!"), ("a + e", "#N/A"),
])
def test_evaluates_like_excel(text, exp):
    current = {"a": 1.0, "b": 2.0, "c": 3.0, "z": 0.0, "t": "text", "e": "#N/A"}
    prior = {"a": 10.0}
    got = fx.evaluate(fx.parse(text), lambda k, lag: (prior if lag else current)[k], GUARDED)
    assert got == exp


@pytest.mark.parametrize("text,exp", [
    ("a + b * c", "A1+B1*C1"), ("(a + b) * c", "(A1+B1)*C1"), ("a - (b - c)", "A1-(B1-C1)"),
    ("-(a + b)", "-(A1+B1)"), ("prev(a) + 1.5", "A0+1.5"), ("grow(prev(a), b)", "ER_GROWTH(A0,B1)"),
    ('benchmark(a, "everbright")', 'ER_BENCHMARK(A1,"everbright")'),
])
def test_translates_to_excel(text, exp):
    from udfs.functions import BY_FORMULA_NAME
    got = fx.to_excel(fx.parse(text), lambda k, lag: f"{k.upper()}{0 if lag else 1}",
                      lambda name: BY_FORMULA_NAME[name].excel_name)
    assert got == exp


def test_cycle_is_reported():
    from udfs.engine import Line, evaluation_order
    with pytest.raises(ValueError, match="cycle"):
        evaluation_order([Line("a", "t", "a", "a", formula="b + 1"), Line("b", "t", "b", "b", formula="a + 1")])


# The engine evaluates each formula through `compiled` (closures made once per text); the tree
# walk `evaluate` is the definition. Hypothesis draws formulas of the language over operands
# that hit every branch of Excel's arithmetic (0 and -0 denominators, overflow to inf, text,
# error values, empty cells, ints) and the two must give the same value and kind of value.
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples

_OPERANDS = {"a": 1.5, "b": -2.0, "z": 0.0, "nz": -0.0, "big": 1e308, "n": 3, "t": "text", "e": "#N/A",
             "d": "#DIV/0!", "blank": None}
_PRIOR = {"a": 10.0, "b": 1e308, "z": None, "nz": -1e-300, "big": -1e308, "n": 0, "t": "#REF!", "e": 2.0,
          "d": 0.0, "blank": 4.0}


def _formulas():
    leaf = st.one_of(st.sampled_from(sorted(_OPERANDS)), st.sampled_from(sorted(_OPERANDS)).map(lambda k: f"prev({k})"),
                     st.sampled_from(["0", "0.5", "2", "1e308", '"x"']))
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"-({x})"),
        st.tuples(inner, inner).map(lambda t: f"grow({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"margin({t[0]}, {t[1]})"),
    ), max_leaves=8)


@settings(max_examples=examples(300))
@given(text=_formulas())
def test_the_compiled_formula_equals_the_tree_walk(text):
    lookup = lambda key, lag: (_PRIOR if lag else _OPERANDS)[key]
    exp = fx.evaluate(fx.parse(text), lookup, GUARDED)
    got = fx.compiled(text)(lookup, GUARDED)
    assert (type(got), got) == (type(exp), exp) or (exp != exp and got != got), text


class Vectors:
    """What a form reads across years: a forecast row, and a line at a year (#N/A elsewhere)."""

    def forecast(self, key):
        return [1.0, 2.0, 3.0]

    def at(self, key, label):
        return {"2026E": 7.0}.get(label, "#N/A")


def test_the_compiled_forms_read_other_years_as_the_tree_walk_does():
    lookup = lambda key, lag: {"y": "2026E", "a": 2.0, "b": 3.0}[key]
    for text in ("at(a, y) * 2", "-at(b, y)", "column(a, b)", "forecast(a)", "dcf(forecast(a), 0.1, 0.02)"):
        assert fx.compiled(text)(lookup, GUARDED, Vectors()) == fx.evaluate(fx.parse(text), lookup, GUARDED, vectors=Vectors())
