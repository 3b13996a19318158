"""The operators of the expression language, each bounded and each failing with a sentence.

An operator raises RowError naming what it could not do (the row is quarantined; at compile
time, a constant part that always fails refuses the expression). What an operator builds is
checked before it is built: repeated text and lists by their real size (engine.value_size),
integers by their number of bits, powers by their exponent.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from migrationsapp.engine.convert import show_value as show
from migrationsapp.engine.errors import RowError
from migrationsapp.engine.value_size import MAX_STRING_LENGTH, built, measure, too_big

MAX_EXPONENT = 100
MAX_POWER_BITS = 4096  # an integer power stays below 2**4096 (about 1233 digits)
MAX_INT_BITS = 2 * MAX_POWER_BITS  # any integer an expression computes

_SEQUENCES = (str, bytes, list, tuple)


def _checked_length(result: Any) -> Any:
    if isinstance(result, _SEQUENCES) and len(result) > MAX_STRING_LENGTH:
        raise RowError(f"the result would be longer than {MAX_STRING_LENGTH} characters")
    return result


def _checked_number(result: Any) -> Any:
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise RowError(f"the result would be a number of more than {MAX_INT_BITS} bits")
    return result


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, list | tuple) and type(a) is type(b):
        # Checked before it is built: the parts may share (and so hide) a lot of elements.
        (size_a, depth_a), (size_b, depth_b) = measure(a), measure(b)
        size, depth = size_a + size_b, max(depth_a, depth_b)
        error = too_big(size, depth)
        if error is not None:
            raise error
        return built(a + b, size, depth)
    # Computing first is safe: the result is at most as long as both inputs together.
    return _checked_number(_checked_length(a + b))


def _mul(a: Any, b: Any) -> Any:
    # Repetition is checked before it happens: 'a' * 10**9 would allocate a gigabyte, and
    # [[1] * 99999] * 99999 holds ten billion elements behind its 99999 references.
    for seq, times in ((a, b), (b, a)):
        if isinstance(seq, _SEQUENCES) and isinstance(times, int):
            count = max(times, 0)
            if len(seq) * count > MAX_STRING_LENGTH:
                raise RowError(f"the result would be longer than {MAX_STRING_LENGTH} characters")
            if isinstance(seq, list | tuple):
                size, depth = measure(seq)
                error = too_big(size * count, depth)
                if error is not None:
                    raise error
                return built(seq * count, size * count, depth)
    return _checked_number(a * b)


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes):
        # '%999999999d' % 1 would allocate before any check could run.
        raise RowError("the % operator does not format text here; use concat() or str()")
    return a % b


def _pow(base: Any, exponent: Any) -> Any:
    numbers = int | float | Decimal
    if isinstance(base, numbers) and isinstance(exponent, numbers):
        if abs(exponent) > MAX_EXPONENT:
            raise RowError(f"exponent {show(exponent)} is larger than {MAX_EXPONENT}")
        if (
            isinstance(base, int)
            and isinstance(exponent, int)
            and base.bit_length() * exponent > MAX_POWER_BITS
        ):
            raise RowError(f"{show(base)} ** {show(exponent)} would be too large")
    result = base**exponent
    if isinstance(result, complex):
        raise RowError(f"{show(base)} ** {show(exponent)} is not a real number")
    return result


def _arithmetic(symbol: str, fn: Callable[[Any, Any], Any], type_error: str) -> Callable:
    def apply(a: Any, b: Any) -> Any:
        try:
            return fn(a, b)
        except TypeError:
            raise RowError(type_error.format(a=show(a), b=show(b)), value=a) from None
        except ZeroDivisionError:
            raise RowError(f"division by zero: {show(a)} {symbol} {show(b)}", value=a) from None
        except (ArithmeticError, ValueError) as exc:  # OverflowError, decimal signals
            raise RowError(f"{show(a)} {symbol} {show(b)} failed: {exc}", value=a) from None

    return apply


def _sub(a: Any, b: Any) -> Any:
    return _checked_number(a - b)


BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _arithmetic("+", _add, "cannot add {a} and {b}"),
    ast.Sub: _arithmetic("-", _sub, "cannot subtract {b} from {a}"),
    ast.Mult: _arithmetic("*", _mul, "cannot multiply {a} by {b}"),
    ast.Div: _arithmetic("/", operator.truediv, "cannot divide {a} by {b}"),
    ast.FloorDiv: _arithmetic("//", operator.floordiv, "cannot divide {a} by {b}"),
    ast.Mod: _arithmetic("%", _mod, "cannot take {a} modulo {b}"),
    ast.Pow: _arithmetic("**", _pow, "cannot raise {a} to the power {b}"),
}
OPERATOR_TEXT = {
    ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
    ast.BitAnd: "&", ast.Invert: "~",
}  # fmt: skip


def _comparison(symbol: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        try:
            return fn(a, b)
        except TypeError:
            raise RowError(f"cannot compare {show(a)} {symbol} {show(b)}", value=a) from None

    return apply


# == and != never raise; `is` is allowed only against None, so its right side is not read.
COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
    ast.Lt: _comparison("<", operator.lt), ast.LtE: _comparison("<=", operator.le),
    ast.Gt: _comparison(">", operator.gt), ast.GtE: _comparison(">=", operator.ge),
    ast.In: _comparison("in", lambda a, b: a in b),
    ast.NotIn: _comparison("not in", lambda a, b: a not in b),
    ast.Is: lambda a, b: a is None, ast.IsNot: lambda a, b: a is not None,
}  # fmt: skip


def _unary(fn: Callable[[Any], Any], message: str) -> Callable[[Any], Any]:
    def apply(a: Any) -> Any:
        try:
            return fn(a)
        except TypeError:
            raise RowError(message.format(a=show(a)), value=a) from None

    return apply


UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: _unary(operator.neg, "cannot negate {a}"),
    ast.UAdd: _unary(operator.pos, "cannot apply unary + to {a}"),
    ast.Not: operator.not_,
}
