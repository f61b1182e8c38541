"""Safe arithmetic: evaluate an expression a model (or a user) wrote, without ``eval``.

The expression is parsed with :func:`ast.parse` (parsing never runs code) and walked over
a strict whitelist of nodes: number literals, ``+ - * / // % **``, unary ``+``/``-``,
parentheses, calls of whitelisted functions by bare name, and the constants ``pi``,
``e`` and ``tau``. Everything else -- names, attribute access, subscripts, strings,
lambdas, comprehensions, keyword arguments, ``__import__`` -- is refused with
:class:`~knowbase.errors.SafetyError` whose ``reason`` field says why.

Work is bounded before it is done, so no input can hang the process or exhaust memory:

* the expression is at most ``max_length`` characters;
* an exponent's magnitude is at most ``max_power``;
* an integer result (of ``**``, ``*`` or ``factorial``) is at most
  :data:`MAX_INT_BITS` bits (about 3,000 decimal digits), checked from the operands'
  bit lengths before multiplying;
* a float result must be finite.

``^`` is read as power, as on calculators (models often write ``2^10``): it is replaced by
``**`` before parsing, so it also binds like ``**`` (``2^10 - 24 == 1000``).

Examples::

    >>> safe_eval("2 * (3 + 4) ** 2")
    98
    >>> round(safe_eval("sqrt(2) * pi"), 4)
    4.4429
    >>> safe_eval("__import__('os')")
    Traceback (most recent call last):
    knowbase.errors.SafetyError: function '__import__' is not allowed
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from knowbase.errors import SafetyError

Number = int | float

MAX_INT_BITS = 10_000
"""Largest integer result, in bits (2**9999 has 3,010 digits; Python's default
``int``-to-``str`` limit is 4,300 digits, so every result can still be printed)."""

MAX_FACTORIAL = 1_000
"""Largest ``factorial`` argument (1000! has 8,530 bits)."""

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _factorial(n: Number) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise SafetyError(f"factorial needs a whole number, not {n}", reason="domain")
        n = int(n)
    if n < 0 or n > MAX_FACTORIAL:
        raise SafetyError(f"factorial argument {n} is outside 0..{MAX_FACTORIAL}", reason="size")
    return math.factorial(n)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, ndigits: int | None = None) -> Number:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 100):
        raise SafetyError("round() digits must be a whole number within -100..100", reason="domain")
    return round(x) if ndigits is None else round(x, ndigits)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt, "log": _log, "ln": math.log, "log10": math.log10, "log2": math.log2,
    "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
    "acos": math.acos, "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "degrees": math.degrees, "radians": math.radians, "hypot": math.hypot,
    "abs": abs, "round": _round, "min": min, "max": max, "floor": math.floor, "ceil": math.ceil,
    "factorial": _factorial,
}
"""Whitelisted functions, called by bare name with positional arguments only."""

_MAX_ARGS = 50


def safe_eval(expression: str, *, max_power: int = 10_000, max_length: int = 500) -> int | float:
    """Evaluate an arithmetic expression safely.

    Args:
        expression: e.g. ``"(17 + 25) * 3 / 2"``, ``"sqrt(16) + log(e)"``.
        max_power: largest allowed exponent magnitude in ``a ** b``.
        max_length: longest expression accepted, in characters.

    Returns:
        The value: an ``int`` when every step stayed integral, else a ``float``.

    Raises:
        SafetyError: the expression is too long, does not parse, uses anything outside the
            whitelist, or would produce a result too large; ``reason`` is one of
            ``length``, ``syntax``, ``name``, ``attribute``, ``call``, ``node``,
            ``literal``, ``power``, ``size``, ``domain``, ``overflow``, ``zero-division``.
    """
    if not isinstance(expression, str):
        raise SafetyError(f"expression must be a string, not {type(expression).__name__}", reason="literal")
    text = expression.strip()
    if len(text) > max_length:
        raise SafetyError(f"expression is {len(text)} characters; the limit is {max_length}", reason="length")
    if not text:
        raise SafetyError("empty expression", reason="syntax")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise SafetyError(f"not an arithmetic expression: {text!r}", reason="syntax") from exc
    try:
        value = _Evaluator(max_power).visit(tree.body)
    except SafetyError:
        raise
    except ZeroDivisionError as exc:
        raise SafetyError("division by zero", reason="zero-division") from exc
    except OverflowError as exc:
        raise SafetyError(f"result too large: {exc}", reason="overflow") from exc
    except (ValueError, TypeError) as exc:
        raise SafetyError(f"math error: {exc}", reason="domain") from exc
    except RecursionError as exc:
        raise SafetyError("expression nested too deeply", reason="size") from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise SafetyError(f"result is not finite ({value})", reason="overflow")
    return value


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}


def _check_int(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SafetyError(f"integer result exceeds {MAX_INT_BITS} bits", reason="size")
    if isinstance(value, float) and not math.isfinite(value):
        raise SafetyError("result is not finite", reason="overflow")
    return value


class _Evaluator:
    """Walks the whitelisted nodes; any other node type is refused."""

    def __init__(self, max_power: int) -> None:
        self.max_power = max_power

    def visit(self, node: ast.AST) -> Number:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.visit(node.operand)
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise SafetyError(f"name {node.id!r} is not allowed", reason="name", name=node.id)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            raise SafetyError(f"attribute access ({node.attr!r}) is not allowed", reason="attribute")
        raise SafetyError(f"{type(node).__name__} is not allowed in arithmetic", reason="node",
                          node=type(node).__name__)

    @staticmethod
    def _constant(node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SafetyError(f"literal {value!r} is not a number", reason="literal")
        return _check_int(value)

    def _binop(self, node: ast.BinOp) -> Number:
        left = self.visit(node.left)
        right = self.visit(node.right)
        op = node.op
        if isinstance(op, ast.Pow):
            return self._power(left, right)
        if isinstance(op, ast.Mult):
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise SafetyError(f"integer result exceeds {MAX_INT_BITS} bits", reason="size")
            return _check_int(left * right)
        fn = _BINARY.get(type(op))
        if fn is None:
            raise SafetyError(f"operator {type(op).__name__} is not allowed", reason="node", node=type(op).__name__)
        return _check_int(fn(left, right))

    def _power(self, base: Number, exponent: Number) -> Number:
        if abs(exponent) > self.max_power:
            raise SafetyError(f"exponent {exponent} exceeds the limit {self.max_power}", reason="power")
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
            # |base| ** exponent has about bit_length(base) * exponent bits
            if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
                raise SafetyError(f"integer result exceeds {MAX_INT_BITS} bits", reason="size")
        if base == 0 and exponent < 0:
            raise ZeroDivisionError("0 cannot be raised to a negative power")
        result = base ** exponent
        if isinstance(result, complex):
            raise SafetyError("result is a complex number", reason="domain")
        return _check_int(result)

    def _call(self, node: ast.Call) -> Number:
        if isinstance(node.func, ast.Attribute):
            raise SafetyError(f"attribute access ({node.func.attr!r}) is not allowed", reason="attribute")
        if not isinstance(node.func, ast.Name):
            raise SafetyError("only whitelisted functions called by name are allowed", reason="call")
        name = node.func.id
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise SafetyError(f"function {name!r} is not allowed", reason="name", name=name)
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise SafetyError(f"{name}() takes plain positional arguments only", reason="call")
        if len(node.args) > _MAX_ARGS:
            raise SafetyError(f"{name}() has too many arguments", reason="call")
        args = [self.visit(a) for a in node.args]
        if name == "factorial" and len(args) == 1 and isinstance(args[0], float) and args[0] > MAX_FACTORIAL:
            raise SafetyError(f"factorial argument {args[0]} is outside 0..{MAX_FACTORIAL}", reason="size")
        return _check_int(fn(*args))
