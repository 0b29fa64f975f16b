"""Check edgeseg's TensorRT calls against the real Python bindings of a TensorRT version.

Two halves. `dump` runs in a subprocess that imported the bindings (`python tensorrt_api.py`): it
prints the module's API as JSON — every class (bases, constructor signatures, members), every
method's pybind11 signature lines from its docstring, properties (read-only or not), enum members.
The rest parses those signatures and decides whether a call fits one (tests/runtimes/tensorrt_uses.py
walks edgeseg's source and asks). Nothing here imports TensorRT itself.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

_PREFIX = re.compile(r"^tensorrt(_bindings)?(\.tensorrt)?\.")
_SIG = re.compile(r"^(?:\d+\.\s*)?(\w*)\((.*)\)(?:\s*->\s*(.+))?$")


# --------------------------------------------------------------------- dump (in the subprocess)
def _signatures(fn: Any) -> list[str]:
    if inspect.isfunction(fn):  # Python-level helpers of the package (nptype, volume)
        return [f"{fn.__name__}{inspect.signature(fn)}"]
    lines = (getattr(fn, "__doc__", None) or "").splitlines()
    if len(lines) > 1 and lines[1].strip() == "Overloaded function.":
        return [line for line in lines if re.match(r"^\d+\. \w+\(", line)]
    return lines[:1] if lines and _SIG.match(lines[0]) else []


def dump(module: Any) -> dict[str, Any]:
    """The API of the bindings `module`: {"version", "module": members, "classes": {qualname: ...}}."""
    classes: dict[str, Any] = {}

    def ours(t: type) -> bool:
        return t.__module__.split(".")[0] == module.__name__.split(".")[0]

    def member(value: Any, in_class: bool) -> dict[str, Any]:
        if inspect.isclass(value) and ours(value):
            register(value)
            return {"kind": "class", "ref": value.__qualname__}
        if isinstance(value, property):
            setter = [] if value.fset is None else _signatures(value.fset)
            return {"kind": "property", "readonly": value.fset is None, "sigs": _signatures(value.fget),
                    "set": setter}  # fmt: skip
        if callable(value) and not inspect.isclass(value):
            return {"kind": "method" if in_class else "function", "sigs": _signatures(value)}
        t = type(value)
        return {"kind": "value", "type": t.__qualname__ if ours(t) else t.__name__}

    def register(cls: type) -> None:
        if cls.__qualname__ in classes:
            return
        entry: dict[str, Any] = {"members": {}, "enum": hasattr(cls, "__members__")}
        classes[cls.__qualname__] = entry
        entry["bases"] = [b.__qualname__ for b in cls.__mro__ if ours(b)]
        entry["init"] = _signatures(cls.__init__)
        for name in dir(cls):
            if not name.startswith("__") or name == "__init__":
                entry["members"][name] = member(inspect.getattr_static(cls, name, None), True)

    members = {n: member(getattr(module, n), False) for n in dir(module) if not n.startswith("__")}
    members["__version__"] = {"kind": "value", "type": "str"}
    return {"version": module.__version__, "module": members, "classes": classes}


# --------------------------------------------------------------------------- signatures, parsed
@dataclass
class Param:
    name: str
    annotation: str  # "" when none; TensorRT types without the module prefix
    default: bool
    kind: str  # "pos", "kwonly", "varargs", "varkw"


def _split(text: str) -> list[str]:
    """Split a parameter list at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{<"
        depth -= ch in ")]}>"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_signature(line: str) -> tuple[list[Param], str]:
    """(parameters, return annotation) of one pybind11 or inspect signature line."""
    match = _SIG.match(line.strip())
    if match is None:
        return [], ""
    params, kind = [], "pos"
    for text in _split(match.group(2)):
        if text in ("*", "/"):
            kind = "kwonly" if text == "*" else kind
            continue
        star = "varkw" if text.startswith("**") else "varargs" if text.startswith("*") else None
        name = re.match(r"\**(\w+)", text)
        rest = text[name.end() :] if name else ""
        ann, _, default = rest.partition(" = ") if rest.startswith(":") else ("", "", rest)
        ann = _PREFIX.sub("", ann.lstrip(": ").strip())
        params.append(Param(name.group(1) if name else text, ann, bool(default.strip("= ")), star or kind))
    return params, _PREFIX.sub("", (match.group(3) or "").strip())


def mismatch(params: list[Param], args: list[Any], kwargs: dict[str, Any], api: Api) -> str | None:
    """Why a call with these positional argument types and keywords does not fit, or None."""
    pos = [p for p in params if p.kind == "pos"]
    named = {p.name: p for p in params if p.kind in ("pos", "kwonly")}
    if len(args) > len(pos) and not any(p.kind == "varargs" for p in params):
        return f"takes {len(pos)} positional arguments, given {len(args)}"
    bound = {p.name: t for p, t in zip(pos, args, strict=False)}
    for key, t in kwargs.items():
        if key in bound or (key not in named and not any(p.kind == "varkw" for p in params)):
            return f"has no keyword '{key}'" if key not in bound else f"got '{key}' twice"
        bound[key] = t
    missing = [n for n, p in named.items() if not p.default and n not in bound]
    if missing:
        return "misses " + ", ".join(missing)
    for key, t in bound.items():
        want = named[key].annotation if key in named else ""
        if t and t[0] == "instance" and want in api.classes and want not in api.classes[t[1]]["bases"]:
            return f"'{key}' takes {want}, given {t[1]}"
    return None


# ---------------------------------------------------------------------- one version's API
@dataclass
class Api:
    """One version's bindings, as `dump` wrote them."""

    version: str
    module: dict[str, Any]
    classes: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Api:
        return cls(data["version"], data["module"], data["classes"])

    def type_of(self, annotation: str) -> tuple[str, str] | None:
        """("instance", class) when `annotation` names a TensorRT class (Optional too), else None."""
        name = re.sub(r"^Optional\[(.*)\]$|^(.*) \| None$", r"\1\2", annotation)
        return ("instance", name) if name in self.classes else None


if __name__ == "__main__":  # python tensorrt_api.py MODULE: print the API of the importable MODULE
    import importlib

    json.dump(dump(importlib.import_module(sys.argv[1])), sys.stdout)
