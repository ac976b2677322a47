"""Safe, vectorised numeric expressions (e.g. an injected f(HT, nJets) or a selection) — parsed with ``ast``, never eval.

Allowed: numbers, the names passed as ``names``, ``+ - * / **``, unary ``-``/``+``, the functions
``min max exp log sqrt abs`` and, when ``allow_logic`` is set, comparisons (``< <= > >= == !=``,
chained) with ``and``/``or``/``not``. Everything else (attributes, subscripts, strings, lambdas,
other calls such as ``__import__('os')``) is rejected when parsing. Evaluation uses float64 numpy
arithmetic, so huge powers overflow to ``inf`` instead of hanging.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from fileset.errors import FilesetError

_BINARY: dict[type, Callable] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide, ast.Pow: np.power,
}
_UNARY: dict[type, Callable] = {ast.USub: np.negative, ast.UAdd: np.positive}
_COMPARE: dict[type, Callable] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, tuple[Callable, int]] = {
    "min": (np.minimum, 2), "max": (np.maximum, 2), "exp": (np.exp, 1), "log": (np.log, 1),
    "sqrt": (np.sqrt, 1), "abs": (np.abs, 1),
}
MAX_LENGTH = 2000


@dataclass(frozen=True)
class Expression:
    """A validated expression tree over a fixed set of variable names."""

    text: str
    names: frozenset[str]
    tree: ast.Expression

    def __call__(self, **values: np.ndarray | float) -> np.ndarray:
        """Evaluate with numpy arrays/numbers for every name used; returns a float or bool array."""
        missing = sorted(self.used_names() - set(values))
        if missing:
            raise FilesetError(f"expression {self.text!r}: no value for {', '.join(missing)}")
        with np.errstate(all="ignore"):
            return np.asarray(_eval(self.tree.body, values))

    def used_names(self) -> set[str]:
        """Variable names the expression refers to."""
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id not in _FUNCTIONS}


def parse(text: str, names: set[str] | frozenset[str], allow_logic: bool = False, what: str = "expression") -> Expression:
    """Parse ``text`` into an :class:`Expression`; any disallowed construct → FilesetError naming it."""
    if not isinstance(text, str) or not text.strip():
        raise FilesetError(f"{what}: expected a non-empty expression string, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise FilesetError(f"{what}: expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise FilesetError(f"{what} {text!r}: syntax error at column {err.offset}: {err.msg}") from None
    _check(tree.body, frozenset(names), allow_logic, text, what)
    return Expression(text, frozenset(names), tree)


def _reject(node: ast.AST, text: str, what: str, why: str) -> FilesetError:
    """The error for a disallowed construct."""
    return FilesetError(f"{what} {text!r}: {why} ({type(node).__name__}) is not allowed")


def _check(node: ast.AST, names: frozenset[str], logic: bool, text: str, what: str) -> None:
    """Recursively allow only the whitelisted node types."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _reject(node, text, what, f"constant {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id not in names:
            allowed = ", ".join(sorted(names))
            raise FilesetError(f"{what} {text!r}: unknown name {node.id!r} (allowed: {allowed})")
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, names, logic, text, what)
        _check(node.right, names, logic, text, what)
        return
    if isinstance(node, ast.UnaryOp) and (type(node.op) in _UNARY or (logic and isinstance(node.op, ast.Not))):
        _check(node.operand, names, logic, text, what)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise _reject(node, text, what, f"call of {ast.unparse(node.func)!r}")
        if node.keywords or len(node.args) != _FUNCTIONS[node.func.id][1]:
            raise FilesetError(f"{what} {text!r}: {node.func.id}() takes {_FUNCTIONS[node.func.id][1]} positional argument(s)")
        for arg in node.args:
            _check(arg, names, logic, text, what)
        return
    if logic and isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        for sub in [node.left, *node.comparators]:
            _check(sub, names, logic, text, what)
        return
    if logic and isinstance(node, ast.BoolOp):
        for sub in node.values:
            _check(sub, names, logic, text, what)
        return
    raise _reject(node, text, what, "construct")


def _eval(node: ast.AST, values: Mapping[str, np.ndarray | float]):
    """Evaluate a checked node with float64 numpy arithmetic."""
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, ast.Name):
        return np.asarray(values[node.id], dtype=np.float64)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return np.logical_not(_eval(node.operand, values))
        return _UNARY[type(node.op)](_eval(node.operand, values))
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id][0](*(_eval(a, values) for a in node.args))
    if isinstance(node, ast.Compare):
        left, result = _eval(node.left, values), None
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, values)
            part = _COMPARE[type(op)](left, right)
            result = part if result is None else np.logical_and(result, part)
            left = right
        return result
    if isinstance(node, ast.BoolOp):
        parts = [_eval(v, values) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = parts[0]
        for p in parts[1:]:
            out = combine(out, p)
        return out
    raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover - _check forbids it
