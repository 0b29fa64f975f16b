"""What an imported-model file's program may do: the checks run before torch deserializes it.

The program (torch.export's JSON graph, see edgeseg.models.imported) comes from a file, so it is
data to be checked, never code to be trusted. `check_program` accepts a graph only if

- every node calls an operator on the allow-list `imported_ops.json` (or `operator.getitem`): pure
  tensor operators, derived from what torch.export emits for real segmentation models by
  `benchmarks/imported_ops.py`. Nothing that reads files (`aten.from_file`), asks about devices,
  draws random numbers, writes into `out=` tensors, returns uninitialised memory or reinterprets
  storage is on it, and an operator that is not on it is refused by name;
- no operator writes into the program's input, its weights or its buffers, or into a view of them
  (the list records, from torch's schemas, which arguments each operator writes and which ones its
  outputs share memory with), and mode arguments (`training`, `train`) are false: a program that
  changed its own state when it runs would give another mask for the same frame on the next call;
- its signature takes the input, parameters and buffers only, returns user outputs only (no buffer
  or input mutations, no tokens, constants or custom objects), has static shapes (no symbolic
  expressions for sympy to parse) and no guard code; arguments are plain values (no nested graphs,
  operators or objects) and tree specs name plain containers only.

Node metadata (stack traces with the writer's paths, module class names resolved by name) is dropped.

At import, `export_program` captures the module and refuses, with torch's own schemas and the
program's signature, a forward that writes into its buffers, parameters or input (before unused
calls are dropped: the result of such a write is often unused), so the user learns what to change.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg._records import RecordError, parse_json, read_json
from edgeseg.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["check_program", "export_program", "operators", "ops_file"]

_GETITEM = "_operator.getitem"
# Argument kinds of torch's serialized graph that carry plain values (no graph, operator, object,
# symbolic expression).
_PLAIN_ARGS = {
    "as_none", "as_tensor", "as_tensors", "as_optional_tensor", "as_optional_tensors", "as_int", "as_ints",
    "as_float", "as_floats", "as_string", "as_strings", "as_bool", "as_bools", "as_scalar_type",
    "as_memory_format", "as_layout", "as_device",
}  # fmt: skip
_INPUT_KINDS = {"user_input", "parameter", "buffer"}
_TREE_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict"}
_REFUSE = "refusing the model file's program:"
_HELP = "see 'Bring your own model' in the README for what an imported program may contain"


def ops_file() -> Path:
    """The allow-list of operators a stored program may call (package data)."""
    return Path(__file__).with_name("imported_ops.json")


@functools.lru_cache(maxsize=1)
def operators() -> dict[str, dict[str, Any]]:
    """The allow-list: operator target -> {"writes": [...], "aliases": [...], "require": {...}}."""
    return dict(read_json(ops_file(), "edgeseg's operator list")["operators"])


def _tensors(arg: Any) -> Iterator[str]:
    """The tensor names an argument (or output) refers to."""
    if not isinstance(arg, dict):
        return
    for key, value in arg.items():
        if key == "as_tensor" and isinstance(value, dict):
            yield str(value.get("name"))
        elif key == "as_tensors" and isinstance(value, list):
            yield from (str(v.get("name")) for v in value if isinstance(v, dict))
        elif key == "as_optional_tensors" and isinstance(value, list):
            for item in value:
                yield from _tensors(item)
        elif key == "as_optional_tensor":
            yield from _tensors(value)


def _plain(arg: Any) -> Any:
    """A serialized argument's value ({"as_bool": true} -> true), for messages."""
    return next(iter(arg.values())) if isinstance(arg, dict) and len(arg) == 1 else arg


def _spec_kind(spec: Any, where: str) -> tuple[str, Any]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise InputError(f"{_REFUSE} its signature is damaged ({where})")
    return next(iter(spec.items()))


def _placeholders(signature: dict[str, Any]) -> dict[str, str]:
    """Tensor name -> what it is ("the input", "buffer 'n'", ...), for every program input."""
    names: dict[str, str] = {}
    for spec in signature["input_specs"]:
        kind, body = _spec_kind(spec, "input_specs")
        if kind not in _INPUT_KINDS:
            raise InputError(f"{_REFUSE} its signature takes a {kind.replace('_', ' ')}; {_HELP}")
        if kind == "user_input":
            for name in _tensors(body["arg"]):
                names[name] = "its input"
        else:
            label = body.get(f"{kind}_name", body["arg"]["name"])
            names[str(body["arg"]["name"])] = f"{kind} '{label}'"
    for spec in signature["output_specs"]:
        kind, body = _spec_kind(spec, "output_specs")
        if kind != "user_output":
            target = (body or {}).get("buffer_name") or (body or {}).get("user_input_name") or ""
            raise InputError(
                f"{_REFUSE} it changes its own state when it runs ({kind.replace('_', ' ')}"
                f"{f' {target!r}' if target else ''}), so one frame would give different masks on "
                "different calls; import a module whose forward leaves its buffers and input unchanged"
            )
    return names


def _check_tree_specs(graph_module: dict[str, Any]) -> None:
    """Tree specs (pytree's JSON) may name plain containers only: a type name is resolved on load."""
    if graph_module.get("treespec_namedtuple_fields"):
        raise InputError(f"{_REFUSE} it names tuple types; {_HELP}")
    for entry in graph_module.get("module_call_graph") or []:
        sig = entry.get("signature") if isinstance(entry, dict) else None
        if sig is None:
            continue
        for key in ("in_spec", "out_spec"):
            if not isinstance(sig.get(key), str):
                raise InputError(f"{_REFUSE} its call signature is damaged")
            stack = [parse_json(sig[key], "its call signature")]
            while stack:
                item = stack.pop()
                if isinstance(item, dict):
                    if "type" in item and item["type"] not in _TREE_TYPES:
                        raise InputError(f"{_REFUSE} it names the type {item['type']!r}; {_HELP}")
                    stack.extend(item.values())
                elif isinstance(item, list):
                    stack.extend(item)


def _check_node(node: dict[str, Any], allowed: dict[str, Any], state: dict[str, str]) -> None:
    """One call: allowed operator, plain arguments, no write into `state` (the program's inputs
    and weights, and views of them), mode flags off. Views of `state` are added to it."""
    target = str(node.get("target"))
    args = {str(i.get("name")): i.get("arg") for i in node.get("inputs", [])}
    for name, arg in args.items():
        if not isinstance(arg, dict) or not set(arg) <= _PLAIN_ARGS:
            kinds = ", ".join(sorted(set(arg) - _PLAIN_ARGS)) if isinstance(arg, dict) else type(arg).__name__
            raise InputError(f"{_REFUSE} {target} takes a {kinds} argument ('{name}'); {_HELP}")
    outputs = [t for o in node.get("outputs", []) for t in _tensors(o)]
    if target == _GETITEM:
        if any(t in state for a in args.values() for t in _tensors(a)):
            state.update(dict.fromkeys(outputs, "a view of them"))
        return
    entry = allowed.get(target)
    if entry is None:
        raise InputError(
            f"{_REFUSE} it calls {target}, which is not on edgeseg's list of pure tensor operators; {_HELP}"
        )
    for name, value in entry.get("require", {}).items():
        if name in args and args[name] != {"as_bool": value}:
            given = json.dumps(_plain(args[name]))
            raise InputError(
                f"{_REFUSE} it calls {target} with {name}={given}; an imported program runs in inference "
                "mode only"
            )
    for name in entry.get("writes", []):
        for tensor in _tensors(args.get(name)):
            if tensor in state:
                raise InputError(
                    f"{_REFUSE} {target} writes into {state[tensor]} when it runs, so one frame would "
                    "give different masks on different calls; import a module whose forward leaves its "
                    "buffers and input unchanged"
                )
    if any(t in state for name in entry.get("aliases", []) for t in _tensors(args.get(name))):
        state.update(dict.fromkeys(outputs, "a view of its input or weights"))


def check_program(program: str) -> dict[str, Any]:
    """Parse a stored program and refuse anything but pure tensor operators over its own input and
    weights (see the module docstring); returns the parsed JSON with node metadata dropped."""
    try:
        data = parse_json(program, "the model file's program")
        graph_module = data["graph_module"]
        graph, signature = graph_module["graph"], graph_module["signature"]
        nodes = graph["nodes"]
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            raise TypeError("nodes")
    except RecordError as exc:
        raise InputError(f"{_REFUSE} {exc}") from None
    except (KeyError, TypeError) as exc:
        raise InputError(f"the model file's program is damaged (no {exc})") from None
    if '"as_expr"' in program or data.get("range_constraints") or data.get("guards_code"):
        raise InputError(f"{_REFUSE} it has symbolic shapes or guard code")
    if graph.get("custom_obj_values"):
        raise InputError(f"{_REFUSE} it holds custom objects")
    try:
        state = _placeholders(signature)
    except (KeyError, TypeError, AttributeError):
        raise InputError("the model file's program is damaged (its signature)") from None
    _check_tree_specs(graph_module)
    allowed = operators()
    try:
        for node in nodes:
            _check_node(node, allowed, state)
            node["metadata"] = {}
    except (KeyError, TypeError, AttributeError):
        raise InputError("the model file's program is damaged (a node)") from None
    return data


# -- at import: the live program, before it is serialised ---------------------------------------


def export_program(module: nn.Module, x: torch.Tensor) -> Any:
    """torch.export's program of `module` at `x`'s shape, without pure calls whose results nothing
    uses (SMP's Mix Transformer allocates an unused `empty` tensor: no program needs to keep that).
    InputError when the program writes into its own buffers, parameters or input."""
    import torch

    ep = torch.export.export(module, (x,))
    changed = _state_written(ep)  # before anything is removed: a write's result may be unused
    if changed:
        raise InputError(
            f"cannot import the module: its forward changes its own state ({changed}) when it runs, so "
            "one frame would give different masks on different calls; keep forward free of updates to "
            "buffers, parameters and its input (a BatchNorm in eval mode is fine)"
        )
    graph = ep.graph_module.graph
    for node in reversed(list(graph.nodes)):
        schema = getattr(node.target, "_schema", None)
        if node.op == "call_function" and not node.users and schema is not None and not schema.is_mutable:
            graph.erase_node(node)
    ep.graph_module.recompile()
    return ep


def _state_written(ep: Any) -> str | None:
    """What a captured program writes of its own inputs, weights and buffers (torch's schemas say
    which arguments an operator writes), e.g. "buffer 'calls'"; None when it writes none."""
    import torch

    sig = ep.graph_signature
    for name in (*sig.buffers_to_mutate.values(), *sig.user_inputs_to_mutate.values()):
        return f"it assigns '{name.removeprefix('module.')}'"
    # Names as the user's module has them (the capture wraps it as `module`).
    owners = {**{k: f"parameter '{v.removeprefix('module.')}'" for k, v in sig.inputs_to_parameters.items()},
              **{k: f"buffer '{v.removeprefix('module.')}'" for k, v in sig.inputs_to_buffers.items()},
              **dict.fromkeys(sig.user_inputs, "its input")}  # fmt: skip
    for node in ep.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        for i, arg in enumerate(node.target._schema.arguments):
            if arg.alias_info is None or not arg.alias_info.is_write:
                continue
            value = node.args[i] if i < len(node.args) else node.kwargs.get(arg.name)
            if isinstance(value, torch.fx.Node) and value.name in owners:
                return f"{node.target} writes into {owners[value.name]}"
    return None
