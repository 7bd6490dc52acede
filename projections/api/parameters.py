"""Every route takes only the query parameters it declares: any other is a 422 naming it (as
FlexMeasures refuses UNEXPECTED_PARAMS), never silently ignored — a misspelt `per-page` or
`after` would otherwise answer something the client did not ask for. Likewise a parameter
that takes one value, given twice."""

from types import UnionType
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ledger.validation import shown
from projections.api.errors import ApiError


async def known_parameters_only(request: Request) -> None:
    """A dependency of every route: 422 for a query parameter the route does not declare.
    Async: it never waits, and a plain function would run in the thread pool."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = declared_query_parameters(route)
    unknown = sorted(set(request.query_params) - set(declared))
    if unknown:
        takes = ", ".join(sorted(declared)) if declared else "none"
        raise ApiError(
            422, f"unknown query parameter {shown(unknown[0])}: this route takes {takes}"
        )
    for name, many in sorted(declared.items()):
        given = len(request.query_params.getlist(name))
        if given > 1 and not many:
            raise ApiError(422, f"query parameter {shown(name)} given {given} times: give it once")


_DECLARED: dict[int, tuple[APIRoute, dict[str, bool]]] = {}
"""`_declared` of each route seen, by identity (a route is unhashable); the route is kept
beside its answer, so its id cannot be reused."""
_ROUTES_REMEMBERED = 1024  # an app has a few dozen routes


def declared_query_parameters(route: APIRoute) -> dict[str, bool]:
    """The names (aliases) of the query parameters of the route and its dependencies, each
    with whether it takes several values: worked out once per route (do not change the
    answer: it is shared)."""
    found = _DECLARED.get(id(route))
    if found is None or found[0] is not route:
        found = (route, _declared(route))
        if len(_DECLARED) >= _ROUTES_REMEMBERED:
            _DECLARED.clear()
        _DECLARED[id(route)] = found
    return found[1]


def _declared(route: APIRoute) -> dict[str, bool]:
    names: dict[str, bool] = {}
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        for field in dependant.query_params:
            names[field.alias] = _takes_several(field.field_info.annotation)
        pending.extend(dependant.dependencies)
    return names


def _takes_several(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_takes_several(member) for member in get_args(annotation))
    return origin in (list, set, frozenset, tuple) or annotation in (list, set, frozenset, tuple)
