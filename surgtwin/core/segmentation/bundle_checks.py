"""Field checks for MONAI bundle configs, and a network build that cannot allocate absurd amounts.

Every value the loader reads from ``configs/metadata.json`` or ``configs/inference.json`` goes through
one of these checks, so that a wrong type or range is refused with the file and the field's dotted
name (``network_data_format.outputs.pred.num_channels must be a positive integer, got 'one'``)
instead of surfacing later as a ``ValueError`` or ``AttributeError``. The values echoed in messages
are shortened (:func:`shown`): a bundle's configs are not patient data, but a message stays one line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import Label, LabelTable

#: the largest integer any ``network_def`` argument may hold (channels, feature sizes, image sizes);
#: real networks stay in the thousands
MAX_NETWORK_INT = 100_000
#: tensor elements a network's construction may allocate at most, whatever its weights file holds
MAX_NETWORK_ELEMENTS = 1 << 31
#: besides its parameters, construction may allocate this many elements and tensors of scratch
#: (relative-position tables, drop-path schedules)
NETWORK_SCRATCH_ELEMENTS = 1 << 24
NETWORK_SCRATCH_TENSORS = 256


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a message names the bad value, on one line)."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def refuse(where: Path, key: str, what: str, value, hint: str | None = None) -> SurgtwinError:
    return SurgtwinError(f"{key} must be {what}, got {shown(value)}", path=where, hint=hint)


def as_object(value, where: Path, key: str, *, default=None) -> dict:
    """A JSON object (``default`` when the field is absent or null)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, dict):
        raise refuse(where, key, "a JSON object", value)
    return value


def as_int(value, where: Path, key: str, lo: int = 1, hi: int = MAX_NETWORK_INT) -> int:
    """An integer from ``lo`` to ``hi`` (a float with an integer value is accepted; bools are not)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value, ok = int(value), True
    if not ok or not lo <= value <= hi:
        what = "a positive integer" if lo == 1 else f"an integer from {lo} to {hi}"
        if ok and lo == 1 and value >= lo:
            what = f"a positive integer up to {hi}"
        raise refuse(where, key, what, value)
    return int(value)


def as_number(value, where: Path, key: str) -> float:
    """A finite JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise refuse(where, key, "a finite number", value)
    return float(value)


def as_str(value, where: Path, key: str, *, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise refuse(where, key, f"a non-empty string of at most {max_len} characters", value)
    return value


def as_str_list(value, where: Path, key: str) -> tuple[str, ...]:
    """A list of names (absent or null: empty). A single string is refused: it is not a list of names."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise refuse(where, key, "a list of structure names", value)
    return tuple(value)


def as_color(value, where: Path, key: str) -> tuple[int, int, int]:
    """Three integers 0..255 (red, green, blue)."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise refuse(where, key, "three integers 0-255 (red, green, blue)", value)
    return (int(value[0]), int(value[1]), int(value[2]))


def as_sha256(value, where: Path, key: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise refuse(where, key, "a sha256 digest (64 hexadecimal digits)", value)
    return text


def json_depth(obj) -> int:
    """How deeply a decoded JSON value nests (iteratively: a hostile file cannot exhaust the stack)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def check_network_args(netdef: dict, where: Path) -> None:
    """``network_def`` arguments are JSON literals: numbers finite, integers at most
    ``MAX_NETWORK_INT`` (checked before MONAI sees them; :func:`build_network_guarded` bounds the rest)."""

    def walk(v, key):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return
        if isinstance(v, int):
            if abs(v) > MAX_NETWORK_INT:
                raise refuse(where, key, f"at most {MAX_NETWORK_INT} (a network size, not an allocation)", v)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise refuse(where, key, "a finite number", v)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{key}[{i}]")
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{key}.{k}")

    for k, v in netdef.items():
        walk(v, f"network_def.{k}")


def network_budget(state: dict) -> tuple[int, int]:
    """(elements, allocations) a network may allocate while it is built: a strict state-dict load
    needs every parameter and buffer in ``state``, so the network cannot be much larger (in values or
    in tensors) than the weights are, whatever its ``network_def`` says."""
    elements = sum(int(getattr(v, "numel", lambda: 0)()) for v in state.values())
    return min(MAX_NETWORK_ELEMENTS, 2 * elements + NETWORK_SCRATCH_ELEMENTS), 2 * len(state) + NETWORK_SCRATCH_TENSORS


class NetworkTooLarge(Exception):
    """Raised inside a network's constructor when it asks for more than its allocation budget."""


#: torch functions that allocate a tensor of a given shape (the shape is their first argument; the
#: ``new_*`` methods' first argument is the tensor itself)
_SHAPED = {"empty", "zeros", "ones", "full", "rand", "randn", "empty_strided"}
_SHAPED_METHODS = {"new_empty", "new_zeros", "new_ones", "new_full"}


def allocation_size(args, kwargs) -> int:
    """Elements a shaped factory call allocates: ``f((a, b))``, ``f(a, b)`` or ``f(size=(a, b))``."""
    shape = kwargs.get("size")
    if shape is None:
        shape = args[0] if args and isinstance(args[0], (tuple, list)) else args
    try:
        return math.prod(int(s) for s in shape)
    except (TypeError, ValueError):
        return 0


def build_network_guarded(cls, kwargs: dict, budget: int, max_allocations: int | None = None):
    """``cls(**kwargs)`` with every shaped allocation counted first: a constructor that would
    allocate more than ``budget`` elements in all, or more than ``max_allocations`` tensors (a
    network of thousands of layers), raises ``NetworkTooLarge`` before it does."""
    from torch.overrides import TorchFunctionMode

    class Budget(TorchFunctionMode):
        total = 0
        count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name in _SHAPED:
                n = allocation_size(args, kwargs)
            elif name in _SHAPED_METHODS:
                n = allocation_size(args[1:], kwargs)
            else:
                n = 0
            if n:
                Budget.total += n
                Budget.count += 1
                if Budget.total > budget:
                    raise NetworkTooLarge(f"more than {budget:.3g} values")
                if max_allocations is not None and Budget.count > max_allocations:
                    raise NetworkTooLarge(f"more than {max_allocations} tensors")
            return func(*args, **kwargs)

    with Budget():
        return cls(**kwargs)


# -- bundle-specific fields -------------------------------------------------------------------------
def literal(value, where: Path, key: str):
    """Refuse config expressions: surgtwin never evaluates code from a bundle."""
    if isinstance(value, str) and value[:1] in ("$", "@", "%"):
        raise SurgtwinError(
            f"{key} is a config expression ({value!r}); surgtwin only reads literal values",
            path=where,
            hint=f"write {key} as a plain JSON number/list in the bundle",
        )
    if isinstance(value, list):
        return [literal(v, where, key) for v in value]
    if isinstance(value, dict):
        return {k: literal(v, where, f"{key}.{k}") for k, v in value.items()}
    return value


def triple(value, where: Path, key: str, lo: float, hi: float, integer: bool = False) -> tuple:
    """Three numbers from ``lo`` to ``hi`` (one number means the same along the three axes)."""
    value = literal(value, where, key)
    items = [value] * 3 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    ok = isinstance(items, (list, tuple)) and len(items) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
        and (not integer or float(v).is_integer()) for v in items)
    if not ok:
        what = "integers" if integer else "numbers"
        raise SurgtwinError(f"{key} must be three {what} from {lo:g} to {hi:g}, got {shown(value)}", path=where)
    return tuple(int(v) if integer else float(v) for v in items)


def first_entry(ndf: dict, group: str, preferred: str, meta_path: Path) -> tuple[str, dict]:
    """``network_data_format.<group>.<preferred>`` (else its first entry), checked to be an object."""
    entries = ndf.get(group)
    if not isinstance(entries, dict) or not entries:
        raise SurgtwinError(f"network_data_format.{group} must be a non-empty JSON object, got {shown(entries)}",
                            path=meta_path, hint="see MONAI's bundle specification (mb_specification)")
    key = preferred if preferred in entries else next(iter(entries))
    return key, as_object(entries[key], meta_path, f"network_data_format.{group}.{key}")


def pair(value, where: Path, key: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SurgtwinError(f"{key} must be two numbers, got {shown(value)}", path=where)
    return (as_number(value[0], where, key), as_number(value[1], where, key))


def label_table(items, names: list[str], meta_path: Path) -> tuple[LabelTable, np.ndarray]:
    """The label table of the foreground channels: ``surgtwin.labels`` entries (channel, value, name,
    color, code), each field checked; channels without an entry get value = channel number."""
    if items is None:
        items = []
    if not isinstance(items, list):
        raise SurgtwinError(f"surgtwin.labels must be a list of label entries, got {shown(items)}", path=meta_path)
    n_out = len(names)
    by_channel = {}
    for i, item in enumerate(items):
        key = f"surgtwin.labels[{i}]"
        item = as_object(item, meta_path, key)
        c = as_int(item.get("channel"), meta_path, f"{key}.channel", 0, n_out - 1)
        if c in by_channel:
            raise SurgtwinError(f"{key}: channel {c} has two entries", path=meta_path)
        by_channel[c] = (key, item)
    table = LabelTable()
    used: set[int] = set()
    values = np.zeros(n_out, dtype=np.int64)
    for c in range(1, n_out):
        key, item = by_channel.get(c, (f"channel {c}", {}))
        value = as_int(item.get("value", c), meta_path, f"{key}.value", 1, 65535)
        color = as_color(item["color"], meta_path, f"{key}.color") if "color" in item else default_color(c)
        name = as_str(item.get("name", names[c]), meta_path, f"{key}.name")
        code = item.get("code")
        if code is not None:
            code = as_str(code, meta_path, f"{key}.code", max_len=64)
        if value in used:
            raise SurgtwinError(f"{key}.value {value} is used by two channels", path=meta_path)
        used.add(value)
        table.add(Label(value=value, name=name, color=color, code=code))
        values[c] = value
    return table, values


def default_color(c: int) -> tuple[int, int, int]:
    """A stable colour for output channel ``c`` when the bundle names none."""
    rng = np.random.default_rng(c)
    return tuple(int(x) for x in rng.integers(40, 255, 3))  # type: ignore[return-value]
