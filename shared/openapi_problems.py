"""Each operation's error responses, derived from the code when the OpenAPI document is rendered.

Nothing here is maintained by hand: for every operation the endpoint function and its dependency tree
(authentication, `valid_*_id` validators, `Idempotent`, ...) are read with `ast`, and so, transitively, is
every function or method of the desk they reach (module globals, closures, instance attributes typed in a
class or set in its `__init__`, parameters typed with a desk class, tables of handlers). The problem kinds
met on the way (a `ProblemKind` constant of `shared.errors`, or a `DeskError` subclass with its own kind)
are what the operation can answer, plus what every operation can answer through the middleware and the
handlers (`GENERIC`, `WITH_BODY`, `WITH_PATH`). Each status gets one response whose description names
only those kinds, and the operation lists their type URIs in `x-problem-types`.

The derivation may over-approximate (a branch that never runs for this route still counts) but must not
under-approximate: `tests/problem_conformance.py` checks every problem the test suite receives against it.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from fastapi import routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request

from shared import errors
from shared.errors import PROBLEM_MEDIA_TYPE, DeskError, ProblemKind

PROJECT = ("services.", "shared.")
# the error module's own tables (the catalogue, the handlers' status map) are not what a route raises
NOT_FOLLOWED = frozenset({"shared.errors"})
#: answered by the server, the middleware or the handlers whatever the route: a control character anywhere in
#: the request (422), a body over the size limit, which any request may carry (413, before routing), a database
#: that does not answer (503), a full server (503), a request that does not arrive in time (408), a bug (500)
GENERIC = (
    errors.VALIDATION,
    errors.PAYLOAD_TOO_LARGE,
    errors.UNAVAILABLE,
    errors.SERVER_BUSY,
    errors.REQUEST_TIMEOUT,
    errors.INTERNAL,
)
#: a route that reads a body: it may be unparsable (400)
WITH_BODY = (errors.MALFORMED,)
#: a path parameter may name nothing the caller may see
WITH_PATH = (errors.NOT_FOUND,)
_TABLE_DEPTH = 2
_TABLE_ITEMS = 500


@dataclass(frozen=True)
class _Instance:
    """A value known only by its class (a typed parameter, `self`, an attribute set in `__init__`)."""

    cls: type


@dataclass(frozen=True)
class _Request:
    """A request to the app being described: its `app` (and what `app.state` holds at start-up) is known."""

    app: Any


_Unknown = object()


def _is_project(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.startswith(PROJECT) and module not in NOT_FOLLOWED


class ProblemDerivation:
    """Walks the code reachable from one app's routes; memoised per function (and the method it serves, and the
    object a method is bound to), so a document renders fast. `request.app` is that app: what its state holds
    at start-up (the rate limiters) is followed too."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._memo: dict[tuple[Any, int, str], frozenset[ProblemKind]] = {}
        self._depth: dict[tuple[Any, int, str], int] = {}  # the walks under way, by their nesting
        self._low = 0  # the shallowest unfinished walk the current one depends on

    # ------------------------------------------------------------ routes

    def kinds_of_route(self, route: Any, method: str) -> frozenset[ProblemKind]:
        """`route`: an `APIRoute`, or the context of one in an included router (its dependant has the router's
        dependencies)."""
        found: set[ProblemKind] = set(GENERIC)
        for call in _calls(route.dependant):
            found |= self.kinds_of(call, method)
        if route.body_field is not None:
            found |= set(WITH_BODY)
        if route.dependant.path_params:
            found |= set(WITH_PATH)
        return frozenset(found)

    # ------------------------------------------------------------ callables

    def kinds_of(self, obj: Any, method: str) -> frozenset[ProblemKind]:
        fn, bound = _function_of(obj)
        if fn is None:
            return frozenset()
        key = (fn, id(bound), method)
        if key in self._memo:
            return self._memo[key]
        if key in self._depth:  # recursion: the outer walk adds what this one would
            self._low = min(self._low, self._depth[key])
            return frozenset()
        depth = self._depth[key] = len(self._depth)
        outer_low, self._low = self._low, depth + 1
        try:
            kinds = frozenset(self._walk(fn, bound, method))
        finally:
            del self._depth[key]
        low = self._low
        # a function inside a cycle saw an unfinished caller: only the cycle's head knows all it can raise
        if low >= depth:
            self._memo[key] = kinds
        self._low = min(outer_low, low if low < depth else outer_low)
        return kinds

    def _walk(self, fn: types.FunctionType, bound: Any, method: str) -> Iterator[ProblemKind]:
        tree = _function_node(fn)
        if tree is None:
            return
        scope = _Scope(self, fn, bound)
        for node in _reachable(tree, scope, method):
            value = scope.resolve(node)
            if value is not _Unknown:
                yield from self._kinds_of_value(value, method)

    def _kinds_of_value(self, value: Any, method: str, depth: int = 0) -> Iterator[ProblemKind]:
        if isinstance(value, ProblemKind):
            yield value
        elif isinstance(value, type) and issubclass(value, DeskError):
            if value is not DeskError:
                yield value.kind
        elif isinstance(value, _Instance):
            call = next((vars(k)["__call__"] for k in value.cls.__mro__ if "__call__" in vars(k)), None)
            if isinstance(call, types.FunctionType) and _is_project(call):
                yield from self.kinds_of(call, method)
        elif isinstance(value, type) and issubclass(value, BaseModel):
            return  # a model's validators answer the generic 422
        elif value is errors.CATALOGUE:
            return  # the catalogue is described (GET /problems), not raised
        elif isinstance(value, (dict, list, tuple, set, frozenset)):
            if depth < _TABLE_DEPTH:  # a table of handlers (a dict of lists of them): any of them may run
                items = value.values() if isinstance(value, dict) else value
                for item in list(items)[:_TABLE_ITEMS]:
                    yield from self._kinds_of_value(item, method, depth + 1)
        elif isinstance(value, types.ModuleType):
            return
        else:
            yield from self.kinds_of(value, method)


def _function_of(obj: Any) -> tuple[types.FunctionType | None, Any]:
    """The desk function `obj` runs when called, and the object it is bound to (None: unknown or none)."""
    bound = None
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, types.MethodType):
        bound, obj = obj.__self__, obj.__func__
    if isinstance(obj, type):
        init = obj.__dict__.get("__init__")
        return (init if isinstance(init, types.FunctionType) and _is_project(init) else None), None
    if isinstance(obj, types.FunctionType):
        obj = inspect.unwrap(obj)
        return (obj if _is_project(obj) else None), bound
    if _is_project(type(obj)):  # a dependency instance (`Authenticator(...)`)
        call = next((vars(k)["__call__"] for k in type(obj).__mro__ if "__call__" in vars(k)), None)
        if isinstance(call, types.FunctionType) and _is_project(call):
            return call, obj
    return None, None


_MODULE_TREES: dict[str, dict[int, ast.AST]] = {}


def _function_node(fn: types.FunctionType) -> ast.AST | None:
    """The function's definition, from its module's source parsed once (by the line its code starts on)."""
    filename = fn.__code__.co_filename
    nodes = _MODULE_TREES.get(filename)
    if nodes is None:
        nodes = {}
        try:
            with open(filename, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
                nodes.setdefault(first, node)
        _MODULE_TREES[filename] = nodes
    return nodes.get(fn.__code__.co_firstlineno)


_Guard = tuple[ast.expr, bool]  # an `if` test, and whether the node sits in its body (True) or its `else`
_SUMMARIES: dict[int, list[tuple[ast.expr, tuple[_Guard, ...]]]] = {}


def _names(tree: ast.AST) -> list[tuple[ast.expr, tuple[_Guard, ...]]]:
    """The names and attribute chains a function reads, each with the `if` tests it sits under (parsed once)."""
    found = _SUMMARIES.get(id(tree))
    if found is None:
        found = []
        _collect(tree, (), found)
        _SUMMARIES[id(tree)] = found
    return found


def _collect(node: ast.AST, guards: tuple[_Guard, ...], out: list[tuple[ast.expr, tuple[_Guard, ...]]]) -> None:
    if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
        out.append((node, guards))
    if isinstance(node, ast.If):
        _collect(node.test, guards, out)
        for stmt in node.body:
            _collect(stmt, (*guards, (node.test, True)), out)
        for stmt in node.orelse:
            _collect(stmt, (*guards, (node.test, False)), out)
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Compare) and isinstance(child, (ast.Name, ast.Attribute)):
            continue  # `call is idempotency` compares a function, it does not run it
        _collect(child, guards, out)


def _reachable(tree: ast.AST, scope: _Scope, method: str) -> Iterator[ast.expr]:
    """The names read by the parts of `tree` that may run for an HTTP `method`: a branch on `request.method` that
    cannot be taken (the write limiter on a GET) is skipped."""
    for node, guards in _names(tree):
        if all(_method_test(test, scope, method) is not (not inside) for test, inside in guards):
            yield node


def _method_test(test: ast.expr, scope: _Scope, method: str) -> bool | None:
    """Whether `test` holds for `method`, when it is a comparison of `<request>.method` (or `and` of such)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        results = [_method_test(v, scope, method) for v in test.values]
        return False if False in results else (True if all(r is True for r in results) else None)
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if not (isinstance(left, ast.Attribute) and left.attr == "method"):
        return None
    if isinstance(right, ast.Constant):
        value: Any = right.value
    else:
        value = scope.resolve(right)
    if isinstance(value, str):
        values = {value}
    elif isinstance(value, (set, frozenset, tuple, list)) and all(isinstance(v, str) for v in value):
        values = set(value)
    else:
        return None
    if isinstance(op, (ast.In, ast.Eq)):
        return method in values
    if isinstance(op, (ast.NotIn, ast.NotEq)):
        return method not in values
    return None


class _Scope:
    """Names as one function sees them: its parameters' and locals' types, its closure, its module."""

    def __init__(self, walker: ProblemDerivation, fn: types.FunctionType, bound: Any) -> None:
        self.fn = fn
        self.globals = fn.__globals__
        self.closure: dict[str, Any] = {}
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                self.closure[name] = cell.cell_contents
            except ValueError:
                continue
        self.locals: dict[str, Any] = {}
        owner = _owner_class(fn)
        for name, annotation in _annotations(fn).items():
            if annotation is Request and walker.app is not None:
                self.locals[name] = _Request(walker.app)
                continue
            cls = _class_of(annotation)
            if cls is not None:
                self.locals[name] = _Instance(cls)
        if bound is not None:
            self.locals["self"] = bound
        elif owner is not None:
            self.locals.setdefault("self", _Instance(owner))
            self.locals.setdefault("cls", owner)

    def lookup(self, name: str) -> Any:
        if name in self.locals:
            return self.locals[name]
        if name in self.closure:
            return self.closure[name]
        if name in self.globals:
            return self.globals[name]
        return _Unknown

    def resolve(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is _Unknown:
                return _Unknown
            return _getattr(base, node.attr)
        return _Unknown


def _getattr(base: Any, attr: str) -> Any:
    if isinstance(base, _Request):
        return base.app if attr == "app" else _Unknown
    if isinstance(base, _Instance):
        for klass in base.cls.__mro__:
            if attr in vars(klass):
                member = vars(klass)[attr]
                if isinstance(member, property) and member.fget is not None:
                    return member.fget
                return member
        typed = _instance_attributes(base.cls).get(attr)
        return _Instance(typed) if typed is not None else _Unknown
    try:
        return getattr(base, attr)
    except Exception:  # noqa: BLE001 - an attribute that cannot be read statically is unknown
        return _Unknown


_ATTRS: dict[type, dict[str, type]] = {}


def _instance_attributes(cls: type) -> dict[str, type]:
    """The classes of an instance's attributes: annotated on the class, or set in `__init__` from a typed
    parameter or a desk class's constructor."""
    if cls in _ATTRS:
        return _ATTRS[cls]
    out: dict[str, type] = {}
    _ATTRS[cls] = out
    for klass in reversed(cls.__mro__):
        if not _is_project(klass):
            continue
        for name, annotation in _class_annotations(klass).items():
            typed = _class_of(annotation)
            if typed is not None:
                out[name] = typed
        init = vars(klass).get("__init__")
        if not isinstance(init, types.FunctionType):
            continue
        params = {n: c for n, a in _annotations(init).items() if (c := _class_of(a)) is not None}
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
                    continue
                if target.value.id != "self" or node.value is None:
                    continue
                value = node.value
                if isinstance(value, ast.Name) and value.id in params:
                    out.setdefault(target.attr, params[value.id])
                elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                    made = init.__globals__.get(value.func.id)
                    if isinstance(made, type) and _is_project(made):
                        out.setdefault(target.attr, made)
    return out


def _owner_class(fn: types.FunctionType) -> type | None:
    parts = fn.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    obj: Any = inspect.getmodule(fn)
    for part in parts[:-1]:
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def _annotations(fn: Any) -> dict[str, Any]:
    try:
        return dict(inspect.get_annotations(fn, eval_str=True))
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate types nothing
        out: dict[str, Any] = {}
        for name, raw in getattr(fn, "__annotations__", {}).items():
            try:
                out[name] = eval(raw, fn.__globals__) if isinstance(raw, str) else raw  # noqa: S307
            except Exception:  # noqa: BLE001, S112
                continue
        return out


def _class_annotations(cls: type) -> dict[str, Any]:
    module = inspect.getmodule(cls)
    out: dict[str, Any] = {}
    for name, raw in vars(cls).get("__annotations__", {}).items():
        try:
            out[name] = eval(raw, vars(module)) if isinstance(raw, str) else raw  # noqa: S307
        except Exception:  # noqa: BLE001, S112
            continue
    return out


def _class_of(annotation: Any) -> type | None:
    """The desk class an annotation names (`Annotated[X, Depends(...)]`, `X | None`), if exactly one."""
    if get_origin(annotation) is not None:
        args = [a for a in get_args(annotation) if a is not type(None)]
        from typing import Annotated

        if get_origin(annotation) is Annotated:
            args = args[:1]
        found = [c for a in args if (c := _class_of(a)) is not None]
        return found[0] if len(found) == 1 else None
    if isinstance(annotation, types.UnionType):
        found = [c for a in annotation.__args__ if (c := _class_of(a)) is not None]
        return found[0] if len(found) == 1 else None
    if isinstance(annotation, type) and _is_project(annotation) and not issubclass(annotation, BaseModel):
        return annotation
    return None


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


# ---------------------------------------------------------------- the document


def problem_response_entry(kinds: list[ProblemKind]) -> dict[str, Any]:
    """One status's response: its description names exactly `kinds` (all of that status), with their types."""
    kinds = sorted(kinds, key=lambda k: k.slug)
    return {
        "description": "; ".join(f"{k.title_en} (`{k.type_uri}`)" for k in kinds),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def declare_problems(schema: dict[str, Any], app: Any) -> None:
    """Write each operation's problem responses and `x-problem-types` from what its code can raise."""
    derivation = ProblemDerivation(app)
    paths = schema.get("paths", {})
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        item = paths.get(route.path_format)
        if item is None:
            continue
        for method in route.methods or ():
            op = item.get(method.lower())
            if op is None:
                continue
            kinds = derivation.kinds_of_route(route, method)
            by_status: dict[int, list[ProblemKind]] = {}
            for kind in kinds:
                by_status.setdefault(kind.status, []).append(kind)
            responses = op.setdefault("responses", {})
            for status in [s for s in responses if str(s)[0] in "45"]:
                del responses[status]  # FastAPI's own 422 (HTTPValidationError) is not what the desk answers
            for status in sorted(by_status):
                responses[str(status)] = problem_response_entry(by_status[status])
            op["x-problem-types"] = sorted(k.type_uri for k in kinds)
    comps = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        comps.pop(unused, None)
