"""The four seed tools of the nano-react workload: calculator, string_length, lookup, compare.

    from reference.tools import run_tool
    run_tool("calculator", "3.14159 * 2")   # -> "6.28318"

Every tool takes the raw `Action Input` text and returns the observation text. A mistake the
agent should see (unknown key, bad expression, a number too large) comes back as an
`Error: ...` string, never as an exception; only a bug in this module raises.

Number formatting (answers are compared exactly, so this is part of the benchmark's contract):
- a value that is a whole number with magnitude below 1e15 prints as an integer: `130`, `-4`;
- anything else prints with at most 6 significant digits, Python's `%.6g`:
  `6.28318`, `0.333333`, `6.022e+23`, `1.381e-23`.

What a number is, for every tool: ASCII digits with an optional sign, decimal point and
exponent (`-4`, `6.28318`, `6.022e+23`, `.5`). No digit separators (`1_000`), no other
scripts' digits (`١٢٣`), no `inf`/`nan`, no hex. A number whose magnitude exceeds 1e300 is
"number too large" wherever it appears; a result too small for a float is 0.

Limits: the calculator walks the AST (never `eval`); it accepts numbers, + - * / // % ** and
parentheses only, refuses inputs over 200 characters or parentheses nested deeper than 32
(a flat chain such as `1+2+...+34` is not nesting), and refuses any intermediate value whose
magnitude would exceed 1e300 before computing it (so `9**9**9` is refused in microseconds
instead of hanging). A tool's answer does not depend on how deep its caller's stack is: the
calculator re-evaluates on a fresh thread's stack when the caller's is exhausted, and
`run_tool` turns any RecursionError into an `Error: ...` observation, never an exception.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import threading

# The seed's lookup table, verbatim values.
LOOKUP_TABLE: dict[str, float] = {
    "pi": 3.14159,
    "e": 2.71828,
    "sqrt2": 1.41421,
    "golden_ratio": 1.61803,
    "avogadro": 6.022e23,
    "speed_of_light": 299792458,
    "planck": 6.626e-34,
    "boltzmann": 1.381e-23,
}

MAX_EXPR_CHARS = 200       # longest calculator input accepted
MAX_DEPTH = 32             # deepest parenthesis nesting accepted
MAX_MAGNITUDE = 1e300      # largest |value| any intermediate result may reach
SIG_DIGITS = 6             # significant digits in formatted non-integers
MAX_STRING_CHARS = 10_000  # longest string_length input accepted
MAX_NUMBER_CHARS = 400     # longest number text compare reads (1e300 has 301 digits)

# One number grammar for every tool (see the module docstring); re.ASCII keeps \d to 0-9.
NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Characters a calculator expression may contain: numbers, operators, parentheses, spaces.
_CALC_CHARS = frozenset("0123456789.eE+-*/%() \t")


class ToolError(Exception):
    """A mistake the agent made; its message becomes an `Error: ...` observation."""


def format_number(x: float | int) -> str:
    """Format a tool result: whole numbers below 1e15 as integers, else 6 significant digits."""
    if isinstance(x, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(x, float) and not math.isfinite(x):
        raise ToolError("result is not a finite number")
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.{SIG_DIGITS}g}"


def parse_number(text: str) -> float | int:
    """Parse one number as the tools print them (`130`, `6.28318`, `6.022e+23`)."""
    t = text.strip()
    if len(t) > MAX_NUMBER_CHARS:
        raise ToolError("number too large")
    if not NUMBER_RE.fullmatch(t):
        raise ToolError(f"not a number: {t[:40]!r}")
    v: float | int = int(t) if t.lstrip("+-").isdigit() else float(t)
    if isinstance(v, float) and not math.isfinite(v) or abs(v) > MAX_MAGNITUDE:
        raise ToolError("number too large")
    return v


# ---------------------------------------------------------------------------------------------
# calculator

def _check_magnitude(v: float | int) -> float | int:
    if isinstance(v, float) and not math.isfinite(v):  # overflow to inf: 1e999, 1e308 * 10
        raise ToolError("number too large")
    if abs(v) > MAX_MAGNITUDE:
        raise ToolError("number too large")
    return v


def _pow(a: float | int, b: float | int) -> float | int:
    # Estimate |a**b| through logarithms before computing it: 9**9**9 must never be attempted.
    # Only growth is refused: 10**-500 is a tiny number (0 as a float), not an error.
    if a == 0:
        if b < 0:
            raise ToolError("division by zero")
        return 0 if b > 0 else 1
    if abs(a) != 1 and b * math.log10(abs(a)) > math.log10(MAX_MAGNITUDE):
        raise ToolError("number too large")
    if abs(a) != 1 and b * math.log10(abs(a)) < -400:
        return 0.0  # below the smallest float: computing it could still take long for big ints
    if a < 0 and b != int(b):
        raise ToolError("complex result")
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        return a ** b
    return float(a) ** float(b)


def _div(a, b):
    if b == 0:
        raise ToolError("division by zero")
    return a / b


def _floordiv(a, b):
    if b == 0:
        raise ToolError("division by zero")
    return a // b


def _mod(a, b):
    if b == 0:
        raise ToolError("division by zero")
    return a % b


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _div,
    ast.FloorDiv: _floordiv,
    ast.Mod: _mod,
    ast.Pow: _pow,
}
_UNARYOPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _eval_node(node: ast.AST, depth: int) -> float | int:
    # depth is bounded by the expression's length (MAX_EXPR_CHARS): a flat chain of 100
    # operands recurses 100 deep, well inside Python's limit. Nesting is bounded on the text.
    if depth > MAX_EXPR_CHARS:
        raise ToolError("expression too deep")
    if isinstance(node, ast.Expression):
        return _eval_node(node.body, depth + 1)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check_magnitude(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _eval_node(node.left, depth + 1)
        right = _eval_node(node.right, depth + 1)
        return _check_magnitude(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
        return _UNARYOPS[type(node.op)](_eval_node(node.operand, depth + 1))
    raise ToolError(f"unsupported expression element: {type(node).__name__}")


def calculator(expr: str) -> str:
    """Evaluate an arithmetic expression of numbers, + - * / // % ** and parentheses."""
    try:
        return _calculate(expr)
    except RecursionError:
        # The parser and the evaluator recurse on the caller's stack: called from deep inside
        # an agent, `-` * 199 + `1` can exhaust it. The answer must not depend on the caller,
        # so the same input is evaluated again on an empty stack (a fresh thread).
        return _on_fresh_stack(_calculate, expr)


def _on_fresh_stack(fn, text: str) -> str:
    """fn(text) on a new thread's empty stack; its ToolError is re-raised here, and a
    RecursionError even there is a ToolError (the input itself is too deep)."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(text)
        except (ToolError, RecursionError) as err:
            box["error"] = err
    t = threading.Thread(target=run, name="tool-fresh-stack")
    t.start()
    t.join()
    err = box.get("error")
    if isinstance(err, RecursionError):
        raise ToolError("expression too deep")
    if err is not None:
        raise err
    return box["value"]


def _calculate(expr: str) -> str:
    text = expr.strip()
    if not text:
        raise ToolError("empty expression")
    if len(text) > MAX_EXPR_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPR_CHARS} characters")
    bad = next((ch for ch in text if ch not in _CALC_CHARS), None)
    if bad is not None:
        raise ToolError(f"unsupported character {bad!r} in expression")
    # Bound nesting before the parser sees it: CPython's parser recurses per parenthesis.
    level = 0
    for ch in text:
        level += ch == "("
        level -= ch == ")"
        if level > MAX_DEPTH:
            raise ToolError("expression too deep")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError):  # RecursionError: see calculator()
        raise ToolError(f"cannot parse expression: {text[:40]!r}") from None
    try:
        value = _eval_node(tree, 0)
    except OverflowError:
        raise ToolError("number too large") from None
    return format_number(value)


# ---------------------------------------------------------------------------------------------
# string_length, lookup, compare

def _unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        t = t[1:-1]
    return t


def string_length(text: str) -> str:
    """Length in characters of the input, surrounding whitespace and one pair of quotes removed."""
    s = _unquote(text)
    if len(s) > MAX_STRING_CHARS:
        raise ToolError(f"string longer than {MAX_STRING_CHARS} characters")
    return str(len(s))


def lookup(key: str) -> str:
    """Value of a named constant from the seed's table (keys are case-insensitive)."""
    k = _unquote(key).lower()
    if k not in LOOKUP_TABLE:
        raise ToolError(f"unknown key {k[:40]!r}")
    return format_number(LOOKUP_TABLE[k])


def compare(text: str) -> str:
    """`a, b` -> `greater` if a > b, `less` if a < b, `equal` otherwise."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ToolError("compare needs two numbers separated by a comma")
    a, b = (parse_number(p) for p in parts)
    return "greater" if a > b else "less" if a < b else "equal"


TOOLS = {
    "calculator": calculator,
    "string_length": string_length,
    "lookup": lookup,
    "compare": compare,
}


def run_tool(name: str, tool_input: str) -> str:
    """Run a tool by name; unknown tools and tool mistakes come back as `Error: ...` text."""
    fn = TOOLS.get(name.strip())
    if fn is None:
        return f"Error: unknown tool {name.strip()[:40]!r}; tools are {', '.join(TOOLS)}"
    try:
        return fn(tool_input)
    except ToolError as err:
        return f"Error: {err}"
    except RecursionError:  # a tool called from a stack with no room left: still the agent's
        return "Error: input nested too deeply"
