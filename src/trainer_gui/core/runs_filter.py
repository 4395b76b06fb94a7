"""The runs table's filter expressions: `lr < 0.01 and test_acc > 0.9`, `tag == "baseline"`.

Parsed with Python's `ast` (never evaluated by Python): only boolean operators, comparisons,
names, constants and `not` are accepted, so an expression cannot call, index or reach anything.
`~` ("contains", case-insensitive) is not a Python comparison: outside string literals it is
swapped for `%` (same length, so positions stay right) before parsing, and a `%` the user typed
is refused. A bad expression raises `FilterError` with the 1-based character position of what is
wrong; a predicate compiled from a good one takes a row accessor and returns a bool.
"""

from __future__ import annotations

import ast
import io
import math
import operator
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 2000
MAX_DEPTH = 64

Getter = Callable[[str], Any]
"""Value of a column for one row: a number, a string, a list of strings (tags) or None."""
Predicate = Callable[[Getter], bool]
Columns = Mapping[str, Sequence[Any]]
ColumnsTest = Callable[[Columns, int], list[bool]]


class FilterError(ValueError):
    """A filter expression that cannot be used; `position` is 1-based (0: the whole text)."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class CompiledFilter:
    """A checked expression: `names` are the columns it reads."""

    text: str
    names: frozenset[str]
    predicate: Predicate
    over_columns: ColumnsTest

    def __call__(self, get: Getter) -> bool:
        return self.predicate(get)

    def rows(self, columns: Mapping[str, Sequence[Any]], count: int) -> list[bool]:
        """The expression for `count` rows at once, from each name's column of values (a
        list comprehension a step instead of a function call a row and a step)."""
        return self.over_columns(columns, count)


def _at(node: ast.AST) -> int:
    return int(getattr(node, "col_offset", -1)) + 1


def _swap_tilde(text: str) -> str:
    """`~` outside strings becomes `%`; a typed `%` (or a token error) is reported."""
    chars = list(text)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except tokenize.TokenError as exc:
        raise FilterError(f"The expression is not finished: {exc.args[0]}.", len(text)) from exc
    except (SyntaxError, IndentationError) as exc:
        raise FilterError(f"Cannot read the expression: {exc.msg}.", exc.offset or 0) from exc
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in {"%", "%="}:
            raise FilterError(
                f"Unknown operator '{tok.string}' at character {tok.start[1] + 1}.",
                tok.start[1] + 1,
            )
        if tok.type == tokenize.OP and tok.string == "~" and tok.start[0] == 1:
            chars[tok.start[1]] = "%"
    return "".join(chars)


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def compare(op: type[ast.cmpop], left: Any, right: Any) -> bool:
    """One comparison with the table's rules: a missing value matches nothing; lists (tags)
    match when any element does (`!=`: when none is equal); numbers compare as numbers."""
    tl, tr = type(left), type(right)
    if (tl is float or tl is int) and (tr is float or tr is int):  # the common case, fast
        return bool(_COMPARE[op](left, right))
    if left is None or right is None:
        return False
    if isinstance(left, list):
        if op is ast.NotEq:
            return all(compare(ast.Eq, item, right) is False for item in left)
        return any(compare(op, item, right) for item in left)
    if isinstance(right, list):
        if op is ast.NotEq:
            return all(compare(ast.Eq, left, item) is False for item in right)
        return any(compare(op, left, item) for item in right)
    a, b = _number(left), _number(right)
    fn = _COMPARE[op]
    if a is not None and b is not None:
        return bool(fn(a, b))
    if isinstance(left, str) and isinstance(right, str):
        return bool(fn(left, right))
    if isinstance(left, bool) or isinstance(right, bool):
        return bool(fn(str(left).lower(), str(right).lower()))
    return op is ast.NotEq


def contains(left: Any, right: Any) -> bool:
    """`a ~ b`: b's text is in a's (case-insensitive); for tags, in any tag."""
    if left is None or right is None:
        return False
    needle = str(right).lower()
    if isinstance(left, list):
        return any(needle in str(item).lower() for item in left)
    return needle in str(left).lower()


class _Compiler:
    def __init__(self, known: Iterable[str]) -> None:
        self.known = list(known)
        self.known_set = set(self.known)
        self.names: set[str] = set()

    def refuse(self, node: ast.AST, what: str) -> FilterError:
        pos = _at(node)
        return FilterError(f"{what} at character {pos} is not allowed in a filter.", pos)

    def value(self, node: ast.expr, depth: int) -> Callable[[Getter], Any]:
        if isinstance(node, ast.Name):
            if node.id not in self.known_set:
                pos = _at(node)
                shown = ", ".join(self.known) if self.known else "(none)"
                raise FilterError(
                    f"Unknown column '{node.id}' at character {pos}. Known columns: {shown}.", pos
                )
            self.names.add(node.id)
            name = node.id
            return lambda get: get(name)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (str, int, float, bool)):
                constant = node.value
                return lambda _get: constant
            raise self.refuse(node, f"The value {node.value!r}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = node.operand
            if isinstance(operand, ast.Constant) and isinstance(operand.value, (int, float)):
                negative = -operand.value
                return lambda _get: negative
            raise self.refuse(node, "A minus sign before something other than a number")
        raise self.refuse(node, _describe(node))

    def test(self, node: ast.expr, depth: int = 0) -> Predicate:
        if depth > MAX_DEPTH:
            raise FilterError(
                f"The expression is nested too deeply (more than {MAX_DEPTH} levels) "
                f"at character {_at(node)}.",
                _at(node),
            )
        if isinstance(node, ast.BoolOp):
            parts = [self.test(v, depth + 1) for v in node.values]
            if isinstance(node.op, ast.And):

                def every(get: Getter) -> bool:
                    for part in parts:  # noqa: SIM110 - no generator per row
                        if not part(get):
                            return False
                    return True

                return every

            def some(get: Getter) -> bool:
                for part in parts:  # noqa: SIM110 - no generator per row
                    if part(get):
                        return True
                return False

            return some
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.test(node.operand, depth + 1)
            return lambda get: not inner(get)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            left, right = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
            return lambda get: contains(left(get), right(get))
        if isinstance(node, ast.Compare):
            operands = [self.value(node.left, depth + 1)]
            ops: list[type[ast.cmpop]] = []
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                if type(op) not in _COMPARE:
                    sym = {ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
                    word = sym.get(type(op), type(op).__name__)
                    pos = _at(comparator)
                    raise FilterError(
                        f"The operator '{word}' before character {pos} is not allowed; "
                        "use ==, !=, <, <=, >, >= or ~ (contains).",
                        pos,
                    )
                ops.append(type(op))
                operands.append(self.value(comparator, depth + 1))
            pairs = list(zip(ops, operands, operands[1:], strict=False))
            if len(pairs) == 1:
                op1, a1, b1 = pairs[0]
                return lambda get: compare(op1, a1(get), b1(get))

            def check(get: Getter) -> bool:
                return all(compare(op, a(get), b(get)) for op, a, b in pairs)

            return check
        if isinstance(node, ast.Name):
            pos = _at(node)
            raise FilterError(
                f"'{node.id}' at character {pos} needs a comparison, "
                f'such as {node.id} > 0.5 or {node.id} == "text".',
                pos,
            )
        raise self.refuse(node, _describe(node))


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "A function call"
    if isinstance(node, ast.Attribute):
        return f"Attribute access ('.{node.attr}')"
    if isinstance(node, ast.Subscript):
        return "Indexing ('[...]')"
    if isinstance(node, ast.Lambda):
        return "A lambda"
    if isinstance(node, ast.BinOp):
        return "Arithmetic"
    if isinstance(node, ast.Constant):
        return f"A bare value ({node.value!r})"
    if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        return "A list or collection"
    return f"'{type(node).__name__}'"


def parse_filter(text: str, known: Iterable[str]) -> CompiledFilter | None:
    """Check `text` against the column names in `known`; None for an empty expression.

    Raises `FilterError` (never anything else) for anything that cannot be used.
    """
    stripped = text.strip()
    if not stripped:
        return None
    if len(text) > MAX_LENGTH:
        raise FilterError(
            f"The expression is too long ({len(text)} characters; at most {MAX_LENGTH}).", 0
        )
    if "\n" in text or "\r" in text:
        pos = min(i for i in (text.find("\n"), text.find("\r")) if i >= 0) + 1
        raise FilterError(f"A line break at character {pos}: write the filter on one line.", pos)
    lead = len(text) - len(text.lstrip())
    try:
        source = _swap_tilde(stripped)
        tree = ast.parse(source, mode="eval")
    except FilterError as exc:
        raise FilterError(_shift(str(exc), exc.position, lead), exc.position + lead) from None
    except SyntaxError as exc:
        last = stripped.split()[-1]
        if last in {"and", "or", "not", "<", "<=", ">", ">=", "==", "!=", "~"}:
            pos = len(text.rstrip()) - len(last) + 1
            message = f"The expression ends after '{last}' at character {pos}: finish it."
            raise FilterError(message, pos) from None
        pos = (exc.offset or 1) + lead
        reason = (exc.msg or "invalid syntax").replace("perhaps you forgot a comma?", "").strip()
        message = f"Cannot read the expression at character {pos}: {reason}."
        raise FilterError(message, pos) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise FilterError(f"Cannot read the expression: {type(exc).__name__}.", 0) from None
    compiler = _Compiler(known)
    try:
        predicate = compiler.test(tree.body)
    except FilterError as exc:
        raise FilterError(_shift(str(exc), exc.position, lead), exc.position + lead) from None
    except RecursionError:
        raise FilterError("The expression is nested too deeply.", 0) from None
    return CompiledFilter(text, frozenset(compiler.names), predicate, _over_columns(tree.body))


def _column(node: ast.expr) -> Callable[[Columns, int], Sequence[Any]]:
    """A checked operand as a column: a name's values, or a constant repeated."""
    if isinstance(node, ast.Name):
        name = node.id
        return lambda columns, _count: columns[name]
    if isinstance(node, ast.UnaryOp):  # checked: minus before a number
        operand = node.operand
        assert isinstance(operand, ast.Constant)
        value: Any = -operand.value  # type: ignore[operator]
    else:
        assert isinstance(node, ast.Constant)
        value = node.value
    return lambda _columns, count: [value] * count


def _over_columns(node: ast.expr) -> ColumnsTest:
    """The same tree as `_Compiler.test` accepted, evaluated a column at a time."""
    if isinstance(node, ast.BoolOp):
        parts = [_over_columns(v) for v in node.values]
        both = isinstance(node.op, ast.And)

        def combine(columns: Columns, count: int) -> list[bool]:
            result = parts[0](columns, count)
            for part in parts[1:]:
                other = part(columns, count)
                if both:
                    result = [a and b for a, b in zip(result, other, strict=True)]
                else:
                    result = [a or b for a, b in zip(result, other, strict=True)]
            return result

        return combine
    if isinstance(node, ast.UnaryOp):  # checked: `not`
        inner = _over_columns(node.operand)
        return lambda columns, count: [not x for x in inner(columns, count)]
    if isinstance(node, ast.BinOp):  # checked: `~`
        left, right = _column(node.left), _column(node.right)
        return lambda columns, count: [
            contains(a, b) for a, b in zip(left(columns, count), right(columns, count), strict=True)
        ]
    assert isinstance(node, ast.Compare)
    operands = [_column(node.left), *(_column(c) for c in node.comparators)]
    steps = [
        (type(op), operands[i], operands[i + 1], node.comparators[i])
        for i, op in enumerate(node.ops)
    ]

    def check(columns: Columns, count: int) -> list[bool]:
        result: list[bool] | None = None
        for op, left, right, right_node in steps:
            lefts = left(columns, count)
            fn = _COMPARE[op]
            constant = right_node.value if isinstance(right_node, ast.Constant) else None
            if type(constant) in (int, float):  # a column against a number: inline
                this = [
                    fn(v, constant)
                    if (type(v) is float or type(v) is int)
                    else compare(op, v, constant)
                    for v in lefts
                ]
            else:
                rights = right(columns, count)
                this = [compare(op, a, b) for a, b in zip(lefts, rights, strict=True)]
            result = (
                this if result is None else [a and b for a, b in zip(result, this, strict=True)]
            )
        return result or []

    return check


def _shift(message: str, position: int, lead: int) -> str:
    """Positions in messages count from the text as typed (leading spaces included)."""
    if not lead or position <= 0:
        return message
    return message.replace(f"character {position}", f"character {position + lead}")


def filter_name(label: str) -> str:
    """A column's name in filter expressions: its label with anything not a letter, digit or
    underscore made `_` (`train/loss` -> `train_loss`), never starting with a digit."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in label.strip())
    out = out.strip("_") or "column"
    if out[0].isdigit():
        out = f"_{out}"
    return out
