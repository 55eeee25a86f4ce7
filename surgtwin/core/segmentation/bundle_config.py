"""Read values out of a MONAI bundle config without executing anything it says.

A model-zoo ``inference.json`` mixes plain values with references (``"@image_key"``,
``"@displayable_configs#sw_batch_size"``) and Python expressions (``"$import glob"``,
``"$torch.device('cuda:0' ...)"``, ``"$[1.5, 1.5, 1.5] if @displayable_configs#highres else [3.0, 3.0, 3.0]"``).
MONAI's own ``ConfigParser`` ``eval``s every ``$`` string, i.e. runs arbitrary code from the file.

surgtwin resolves only the values it actually uses, on demand:

* ``@a#b#c`` references are followed (with a depth limit and a cycle check);
* a ``$`` expression is evaluated by a restricted interpreter over Python's ``ast``: literals
  (numbers, strings, booleans, None, lists, tuples), references, ``if``/``else``, comparisons,
  ``and``/``or``/``not``, unary minus and ``+ - * /``. No names other than references, no calls, no
  attribute access, no subscripts, no imports: the zoo's value expressions (e.g. wholeBody's ``pixdim``)
  need nothing more;
* anything else (``$torch.load(...)``, ``$numpy.float32``, ``%file#key`` macros) is refused with the
  key's dotted name and the file, *if* surgtwin needs that value. Expressions in keys surgtwin never
  reads (imports, datalist, device, output_dir, the evaluator, handlers) are never looked at.

Decision on "trusted" bundles: surgtwin offers no mode that evaluates arbitrary ``$`` code. The CT
bundles of the model zoo run without it (see ``bundle_zoo``), a config is a data file that travels
with weights from outside the hospital's control, and a desktop app that runs code from a JSON file on
a click is a code-execution path that no checkbox makes safe. A bundle that truly needs code (DiNTS'
``$torch.load`` of an architecture checkpoint) is refused, naming the expression; run it with MONAI.
"""

from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation.bundle_checks import shown

#: how many references may be followed to reach one value (real configs: 2-3)
MAX_REF_DEPTH = 16
#: longest ``$`` expression the restricted interpreter reads
MAX_EXPR_CHARS = 500

_REF = re.compile(r"@([A-Za-z_][\w]*(?:#[\w]+)*)")

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


class ConfigExpressionError(Exception):
    """A ``$`` expression outside the restricted grammar (the message says which construct)."""


class BundleConfig:
    """A parsed config file with a resolver for the values surgtwin reads."""

    def __init__(self, data: dict, path: Path):
        self.data = data
        self.path = path

    def raw(self, dotted: str, default=None):
        """The value at ``a#b#c`` (list items by index) without resolving it; ``default`` when absent."""
        node = self.data
        for part in dotted.split("#"):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    def resolve(self, value, key: str, _depth: int = 0):
        """``value`` with references followed and restricted expressions evaluated, recursively.

        ``key`` is the dotted name used in messages (``preprocessing.transforms[3].pixdim``)."""
        if _depth > MAX_REF_DEPTH:
            raise SurgtwinError(f"{key}: references nest deeper than {MAX_REF_DEPTH} (a cycle?)", path=self.path)
        if isinstance(value, str):
            if value.startswith("@"):
                target = value[1:]
                if not _REF.fullmatch(value):
                    raise SurgtwinError(f"{key} = {shown(value)} is not a reference surgtwin can follow", path=self.path)
                missing = object()
                ref = self.raw(target, missing)
                if ref is missing:
                    raise SurgtwinError(f"{key} refers to {shown(value)}, which the config does not define",
                                        path=self.path)
                return self.resolve(ref, f"{key} -> {target}", _depth + 1)
            if value.startswith("$"):
                return self._expression(value, key, _depth)
            if value.startswith("%"):
                raise SurgtwinError(f"{key} = {shown(value)} is a config macro (a value from another file); "
                                    "surgtwin only reads values inside this file", path=self.path,
                                    hint=f"write {key} as a plain JSON value")
            return value
        if isinstance(value, list):
            return [self.resolve(v, f"{key}[{i}]", _depth) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{key}.{k}", _depth) for k, v in value.items()}
        return value

    def _expression(self, text: str, key: str, depth: int):
        src = text[1:].strip()
        refs: dict[str, object] = {}

        def sub(m):
            name = f"__ref{len(refs)}"
            refs[name] = m.group(1)
            return name

        try:
            if len(src) > MAX_EXPR_CHARS:
                raise ConfigExpressionError(f"longer than {MAX_EXPR_CHARS} characters")
            tree = ast.parse(_REF.sub(sub, src), mode="eval")
            values = {}
            for name, target in refs.items():
                values[name] = self.resolve("@" + target, f"{key} -> {target}", depth + 1)
            return _eval(tree.body, values)
        except (SyntaxError, ConfigExpressionError, ValueError, TypeError, ZeroDivisionError) as exc:
            reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
            raise SurgtwinError(
                f"{key} is a config expression ({shown(text)}) that surgtwin does not evaluate: {reason}",
                path=self.path,
                hint=f"write {key} as a plain JSON value; surgtwin never runs code from a bundle "
                     "(only literals, references, if/else and arithmetic are read)",
            ) from None


def _eval(node, refs: dict):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, str, bool)) or node.value is None:
            return node.value
        raise ConfigExpressionError(f"constant {node.value!r} is not a JSON value")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, refs) for e in node.elts]
    if isinstance(node, ast.Name):
        if node.id in refs:
            return refs[node.id]
        raise ConfigExpressionError(f"it names {node.id!r} (only @references are values)")
    if isinstance(node, ast.IfExp):
        return _eval(node.body, refs) if _eval(node.test, refs) else _eval(node.orelse, refs)
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, refs) for v in node.values]
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        v = _eval(node.operand, refs)
        if isinstance(node.op, ast.Not):
            return not v
        _number(v)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_number(_eval(node.left, refs)), _number(_eval(node.right, refs)))
    if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
        left = _eval(node.left, refs)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, refs)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    what = {ast.Call: "a call", ast.Attribute: "an attribute", ast.Subscript: "a subscript",
            ast.ListComp: "a comprehension", ast.Lambda: "a lambda"}.get(type(node), type(node).__name__)
    raise ConfigExpressionError(f"it contains {what}")


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigExpressionError(f"arithmetic on {shown(v)}")
    return v
