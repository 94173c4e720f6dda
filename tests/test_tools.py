import time

import pytest

from reference.tools import LOOKUP_TABLE, calculator, format_number, run_tool


@pytest.mark.parametrize("expr, expected", [
    ("3.14159 * 2", "6.28318"),
    ("12 * 10 + 10", "130"),
    ("10 / 4", "2.5"),
    ("10 / 2", "5"),
    ("1 / 3", "0.333333"),
    ("2 ** 10", "1024"),
    ("-(3 - 5)", "2"),
    ("7 // 2", "3"),
    ("7 % 3", "1"),
    ("6.022e+23 * 3", "1.8066e+24"),
    ("2 ** -1", "0.5"),
])
def test_calculator_evaluates_arithmetic(expr, expected):
    assert run_tool("calculator", expr) == expected


@pytest.mark.parametrize("expr", [
    "9**9**9",
    "(" * 10_000 + "1" + ")" * 10_000,
    "1" * 1_000_000,
    "10 ** 400",
    "1e308 * 10",
    "(2 ** 1000) ** 1000",
])
def test_calculator_refuses_huge_or_deep_input_quickly(expr):
    t0 = time.perf_counter()
    out = run_tool("calculator", expr)
    assert out.startswith("Error:")
    assert time.perf_counter() - t0 < 0.1


@pytest.mark.parametrize("expr, message", [
    ("1 / 0", "division by zero"),
    ("5 // 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("__import__('os').system('true')", "unsupported"),
    ("(1).real", "unsupported"),
    ("[1, 2]", "unsupported"),
    ("'a' * 3", "unsupported"),
    ("True + 1", "unsupported"),
    ("x + 1", "unsupported"),
    ("1 +", "cannot parse"),
    ("", "empty"),
    ("(-8) ** 0.5", "complex"),
])
def test_calculator_errors_become_observations(expr, message):
    out = run_tool("calculator", expr)
    assert out.startswith("Error:") and message in out


def test_calculator_never_calls_eval(monkeypatch):
    import builtins
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval was called"))
    assert calculator("1 + 2") == "3"


@pytest.mark.parametrize("value, text", [
    (130, "130"), (130.0, "130"), (-4.0, "-4"), (6.28318, "6.28318"), (2 / 3, "0.666667"),
    (6.022e23, "6.022e+23"), (1.381e-23, "1.381e-23"), (299792458, "299792458"),
    (1e15, "1e+15"),
])
def test_format_number_is_integer_or_six_significant_digits(value, text):
    assert format_number(value) == text


def test_lookup_table_matches_the_seed():
    assert run_tool("lookup", "pi") == "3.14159"
    assert run_tool("lookup", "PI") == "3.14159"
    assert run_tool("lookup", "avogadro") == "6.022e+23"
    assert run_tool("lookup", "planck") == "6.626e-34"
    assert run_tool("lookup", "speed_of_light") == "299792458"
    assert set(LOOKUP_TABLE) == {"pi", "e", "sqrt2", "golden_ratio", "avogadro",
                                 "speed_of_light", "planck", "boltzmann"}


def test_lookup_unknown_key_is_an_error_observation():
    assert run_tool("lookup", "tau").startswith("Error: unknown key")


def test_string_length_strips_one_pair_of_quotes():
    assert run_tool("string_length", "'hello world'") == "11"
    assert run_tool("string_length", "hello world") == "11"
    assert run_tool("string_length", '"ab"') == "2"


@pytest.mark.parametrize("inp, out", [
    ("3.14159, 2.71828", "greater"), ("1, 2", "less"), ("2, 2.0", "equal"),
    ("1.381e-23, 1.41421", "less"),
])
def test_compare_returns_greater_less_or_equal(inp, out):
    assert run_tool("compare", inp) == out


@pytest.mark.parametrize("inp", ["1 2", "1, 2, 3", "a, 1", "nan, 1", "inf, 1"])
def test_compare_rejects_bad_input(inp):
    assert run_tool("compare", inp).startswith("Error:")


def test_unknown_tool_is_an_error_observation():
    assert run_tool("search", "x").startswith("Error: unknown tool 'search'")


@pytest.mark.parametrize("expr, expected", [
    ("+".join(str(i) for i in range(1, 35)), "595"),
    ("*".join(str(i) for i in range(1, 51)), "3.04141e+64"),
    ("-" * 60 + "7", "7"),
    ("((((((((((1 + 2))))))))))", "3"),
])
def test_calculator_bounds_nesting_not_chain_length(expr, expected):
    assert run_tool("calculator", expr) == expected


@pytest.mark.parametrize("expr", ["10 ** -500", "2 ** -2000", "1e-400", "0.5 ** 5000"])
def test_calculator_tiny_results_are_numbers_not_errors(expr):
    assert run_tool("calculator", expr) == "0"


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662\u0663", "0x10", "1j", "inf", "nan",
                                  "\uff11\uff12", "1e5e5"])
def test_the_tools_agree_on_what_a_number_is(text):
    calc = run_tool("calculator", f"{text} + 1")
    comp = run_tool("compare", f"{text}, 1")
    assert calc.startswith("Error:") and comp.startswith("Error:"), (calc, comp)


@pytest.mark.parametrize("text, expected", [
    ("1e5", "100000"), (".5", "0.5"), ("-4", "-4"), ("+3", "3"), ("6.022e+23", "6.022e+23"),
])
def test_the_tools_accept_the_same_numbers(text, expected):
    assert run_tool("calculator", text) == expected
    assert run_tool("compare", f"{text}, {expected}") == "equal"


@pytest.mark.parametrize("tool, text", [
    ("compare", "9" * 5000 + ", 1"), ("compare", "1e400, 1"), ("calculator", "1e999"),
    ("calculator", "10 ** 400"),
])
def test_huge_numbers_are_too_large_not_infinite(tool, text):
    assert run_tool(tool, text) == "Error: number too large"


def _at_depth(margin: int, fn):
    """fn() called with only `margin` frames of room left below the recursion limit."""
    def room(n):  # measured, not computed: C calls count against the limit too
        try:
            return room(n + 1)
        except RecursionError:
            return n

    def down(n):
        return fn() if n <= 0 else down(n - 1)
    return down(room(0) - margin)


@pytest.mark.parametrize("margin", [2, 4, 8, 30, 120, 400])
@pytest.mark.parametrize("tool, text, answer", [
    ("calculator", "-" * 199 + "1", "-1"),
    ("calculator", "(" * 32 + "2 ** 3" + ")" * 32, "8"),
    ("calculator", "+".join(["1"] * 100), "100"),
    ("compare", "1, 2", "less"),
    ("lookup", "pi", "3.14159"),
    ("string_length", "'abc'", "3"),
])
def test_a_tool_called_from_a_deep_stack_answers_or_gives_a_typed_error(margin, tool, text, answer):
    out = _at_depth(margin, lambda: run_tool(tool, text))
    assert out == answer or out == "Error: input nested too deeply", out
    if margin >= 30:  # room for the call itself: the answer must not depend on the caller
        assert out == answer
