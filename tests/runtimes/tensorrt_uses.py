"""What edgeseg's source uses of TensorRT, checked against one version's bindings (tensorrt_api.py).

An AST walk follows every value that comes from the `tensorrt` module (a parameter named `trt`, a
name bound by `import tensorrt`, `from tensorrt import X` or edgeseg's `import_tensorrt()`) through
assignments, tuple assignments, `self.` attributes, closures, calls and the return types the
pybind11 signatures name (`config = builder.create_builder_config()` is an IBuilderConfig). It reports
each attribute, method, enum member, keyword, argument count, TensorRT-typed argument, property
assignment and overridden method (subclasses of ILogger, IProgressMonitor) that the version lacks,
and an attribute read on a TensorRT value whose type it cannot tell, so nothing goes unchecked
silently. The list of what is used comes from the source; the test adds no table of its own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from tests.runtimes.tensorrt_api import Api, mismatch, parse_signature

__all__ = ["Report", "check"]

Type = tuple[Any, ...] | None  # ("module",) ("class", q) ("instance", q) ("callable", ...) ...
MODULE: Type = ("module",)
LOADER = "import_tensorrt"  # edgeseg's `import tensorrt` that names the install on failure


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    uses: set[str] = field(default_factory=set)  # "trt.Builder", "IBuilderConfig.set_flag", ...


@dataclass(eq=False)
class Scope:
    node: ast.AST
    parent: Scope | None
    owner: ast.ClassDef | None  # the class whose method this is, for `self.` attributes
    names: dict[str, list[Any]] = field(default_factory=dict)
    nodes: list[ast.AST] = field(default_factory=list)


def check(source: str, filename: str, api: dict[str, Any]) -> Report:
    """Every TensorRT use in `source` that the bindings `api` (tensorrt_api.dump) do not have."""
    return _Checker(ast.parse(source, filename), filename, Api.from_json(api)).run()


class _Checker:
    def __init__(self, tree: ast.Module, filename: str, api: Api) -> None:
        self.api, self.filename, self.report = api, filename, Report()
        self.scopes = [Scope(tree, None, None)]
        self.self_attrs: dict[tuple[int, str], list[tuple[ast.expr, Scope]]] = {}
        self.memo: dict[int, Type] = {}
        self._collect(tree, self.scopes[0])

    # ------------------------------------------------------------------------------ scopes
    def _function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope, owner: Any) -> None:
        scope.names.setdefault(fn.name, []).append(None)
        for expr in [*fn.decorator_list, *fn.args.defaults, *filter(None, fn.args.kw_defaults)]:
            self._visit(expr, scope)
        inner = Scope(fn, scope, owner)
        self.scopes.append(inner)
        a = fn.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]:
            inner.names[arg.arg] = [MODULE if arg.arg == "trt" else None]
        for stmt in fn.body:
            self._visit(stmt, inner)

    def _visit(self, node: ast.AST, scope: Scope) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return self._function(node, scope, None)
        scope.nodes.append(node)
        if isinstance(node, ast.ClassDef):
            scope.names.setdefault(node.name, []).append(("localclass", node, scope))
            for expr in [*node.bases, *node.decorator_list]:
                self._visit(expr, scope)
            for stmt in node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._function(stmt, scope, node)
                else:
                    self._visit(stmt, scope)
            return None
        self._bind(node, scope)
        self._collect(node, scope)
        return None

    def _collect(self, node: ast.AST, scope: Scope) -> None:
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _bind(self, node: ast.AST, scope: Scope) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._target(target, node.value, scope)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._target(node.target, node.value, scope)
        elif isinstance(node, (ast.For, ast.comprehension, ast.withitem, ast.NamedExpr)):
            target = getattr(node, "target", None) or getattr(node, "optional_vars", None)
            if target is not None:
                self._target(target, None, scope)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound = MODULE if alias.name == "tensorrt" else None
                scope.names.setdefault(alias.asname or alias.name.split(".")[0], []).append(bound)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                bound = ("member", alias.name, node) if node.module == "tensorrt" else None
                scope.names.setdefault(alias.asname or alias.name, []).append(bound)

    def _target(self, target: ast.expr, value: ast.expr | None, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope.names.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            same = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
            for i, elt in enumerate(target.elts):
                self._target(elt, value.elts[i] if same else None, scope)  # type: ignore[union-attr]
        elif self._is_self(target, scope) and value is not None:
            key = (id(scope.owner), target.attr)  # type: ignore[attr-defined]
            self.self_attrs.setdefault(key, []).append((value, scope))

    @staticmethod
    def _is_self(node: ast.expr, scope: Scope) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and scope.owner is not None
        )

    # ---------------------------------------------------------------------------- checking
    def run(self) -> Report:
        for scope in self.scopes:
            for node in scope.nodes:
                if isinstance(node, (ast.Attribute, ast.Call, ast.Name)):
                    self.eval(node, scope)
                if isinstance(node, ast.ClassDef):
                    self._overrides(node, scope)
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Attribute) and not self._is_self(target, scope):
                            owner, value = self.eval(target.value, scope), self.eval(node.value, scope)
                            self._store(owner, target, value)
        return self.report

    def problem(self, node: ast.AST, text: str) -> None:
        line = getattr(node, "lineno", 0)
        self.report.problems.append(f"{self.filename}:{line}: {text} (TensorRT {self.api.version})")

    def lookup(self, name: str, scope: Scope | None) -> Type:
        while scope is not None:
            if name in scope.names:
                return self._first(scope.names[name], scope)
            scope = scope.parent
        return None

    def _first(self, bindings: list[Any], scope: Scope) -> Type:
        for bound in bindings:
            t = self.eval(bound, scope) if isinstance(bound, ast.AST) else bound
            if isinstance(t, tuple) and t[0] == "member":  # from tensorrt import X
                t = self.attribute(MODULE, t[1], t[2])
            if t is not None:
                return t
        return None

    def eval(self, node: ast.AST, scope: Scope) -> Type:
        key = id(node)
        if key not in self.memo:
            self.memo[key] = None  # a cycle evaluates to "not TensorRT"
            self.memo[key] = self._eval(node, scope)
        return self.memo[key]

    def _eval(self, node: ast.AST, scope: Scope) -> Type:
        if isinstance(node, ast.Name):
            return self.lookup(node.id, scope)
        if isinstance(node, ast.Attribute):
            if self._is_self(node, scope):
                found = self.self_attrs.get((id(scope.owner), node.attr), [])
                types = [self.eval(value, where) for value, where in found]
                return next((t for t in types if t is not None), None)
            owner = self.eval(node.value, scope)
            if isinstance(node.ctx, ast.Store):
                return None  # checked with the assigned value's type, in `run`
            if owner is not None and owner[0] == "localinstance":  # an object of a class in the source
                found = self.self_attrs.get((id(owner[1]), node.attr), [])
                return next((t for t in (self.eval(v, where) for v, where in found) if t), None)
            return self.attribute(owner, node.attr, node)
        if isinstance(node, ast.Call):
            if getattr(node.func, "id", getattr(node.func, "attr", None)) == LOADER:
                return MODULE
            func = self.eval(node.func, scope)
            args = [self.eval(a, scope) for a in node.args]
            kwargs = {k.arg: self.eval(k.value, scope) for k in node.keywords if k.arg}
            starred = any(isinstance(a, ast.Starred) for a in node.args)
            exact = not starred and all(k.arg for k in node.keywords)  # no *args/**kwargs to count
            return self.call(func, args, kwargs, node, exact)
        return None

    def attribute(self, owner: Type, attr: str, node: ast.AST) -> Type:
        if owner is None or owner[0] in ("localclass", "localinstance", "callable"):
            return None
        if owner[0] == "opaque":
            self.problem(node, f"cannot tell the type of {owner[1]}, so '.{attr}' is unchecked")
            return None
        members = self.api.module if owner == MODULE else self.api.classes[owner[1]]["members"]
        label = f"{'trt' if owner == MODULE else owner[1]}.{attr}"
        entry = members.get(attr)
        if entry is None:
            self.problem(node, f"{label} does not exist")
            return None
        self.report.uses.add(label)
        kind = entry["kind"]
        if kind == "class":
            return ("class", entry["ref"])
        if kind in ("method", "function"):
            return ("callable", label, entry["sigs"], kind == "method" and owner[0] == "instance")
        if kind == "property" and owner[0] == "instance":
            return self._returns(entry["sigs"], label)
        return ("instance", entry["type"]) if kind == "value" and entry["type"] in self.api.classes else None

    def _returns(self, sigs: list[str], label: str) -> Type:
        for sig in sigs:
            ret = parse_signature(sig)[1]
            found = self.api.type_of(ret)
            if found is not None:
                return found
            if "::" in ret:  # a C++ type pybind11 has no Python name for
                return ("opaque", f"the result of {label}")
        return None

    def call(
        self, func: Type, args: list[Type], kwargs: dict[str, Type], node: ast.Call, exact: bool
    ) -> Type:
        if func is None:
            return None
        if func[0] == "localclass":  # a class in the source: a TensorRT subclass, or our own
            bases = [self.eval(b, func[2]) for b in func[1].bases]
            trt_base = next((b[1] for b in bases if b and b[0] == "class"), None)
            return ("instance", trt_base) if trt_base else ("localinstance", func[1])
        if func[0] == "class":
            sigs, label, bound = self.api.classes[func[1]]["init"], f"{func[1]}(...)", True
            if not sigs:
                self.problem(node, f"{func[1]} cannot be constructed from Python")
                return None
        elif func[0] == "callable":
            _, label, sigs, bound = func
        else:
            return None
        if exact and sigs:
            self._check_call(label, sigs, args, kwargs, bound, node)
        return ("instance", func[1]) if func[0] == "class" else self._returns(sigs, label)

    def _check_call(self, label: str, sigs: list[str], args: list[Type], kwargs: dict[str, Type],
                    bound: bool, node: ast.Call) -> None:  # fmt: skip
        reasons = []
        for sig in sigs:
            params = parse_signature(sig)[0]
            if bound and params and params[0].name == "self":
                params = params[1:]
            reason = mismatch(params, args, kwargs, self.api)
            if reason is None:
                return
            reasons.append(reason)
        self.problem(node, f"{label} {reasons[0]}; the bindings have {' | '.join(sigs)}")

    def _store(self, owner: Type, node: ast.Attribute, value: Type) -> None:
        """`obj.attr = value` on a TensorRT object: a settable property taking the value's type."""
        if owner is None or owner[0] != "instance":
            return
        label = f"{owner[1]}.{node.attr}"
        entry = self.api.classes[owner[1]]["members"].get(node.attr)
        if entry is None or entry["kind"] != "property":
            self.problem(node, f"{label} is not a property that can be set")
        elif entry["readonly"]:
            self.problem(node, f"{label} is read-only")
        else:
            reasons = [mismatch(parse_signature(s)[0][1:], [value], {}, self.api) for s in entry["set"]]
            if reasons and None not in reasons:
                have = " | ".join(entry["set"])
                self.problem(node, f"{label} = ... {reasons[0]}; the bindings have {have}")
            else:
                self.report.uses.add(f"{label} =")

    def _overrides(self, cls: ast.ClassDef, scope: Scope) -> None:
        """Methods a subclass of a TensorRT class defines must be ones the base has, same arity."""
        bases = [self.eval(b, scope) for b in cls.bases]
        for base in (b[1] for b in bases if b and b[0] == "class"):
            members = self.api.classes[base]["members"]
            for fn in cls.body:
                if not isinstance(fn, ast.FunctionDef) or fn.name == "__init__":
                    continue
                entry, arity, ours = members.get(fn.name), len(fn.args.args), f"{cls.name}.{fn.name}"
                if entry is None or entry["kind"] != "method":
                    self.problem(fn, f"{ours} overrides nothing: {base} has no method {fn.name}")
                elif all(len(parse_signature(s)[0]) != arity for s in entry["sigs"]):
                    self.problem(fn, f"{ours} takes {arity} parameters; {base} has {entry['sigs']}")
                else:
                    self.report.uses.add(f"{base}.{fn.name} (override)")
