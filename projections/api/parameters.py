"""Every route takes only the query parameters it declares: any other is a 422 naming it (as
FlexMeasures refuses UNEXPECTED_PARAMS), never silently ignored — a misspelt `per-page` or
`after` would otherwise answer something the client did not ask for."""

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ledger.validation import shown
from projections.api.errors import ApiError


def known_parameters_only(request: Request) -> None:
    """A dependency of every route: 422 for a query parameter the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = declared_query_parameters(route)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        takes = ", ".join(sorted(declared)) if declared else "none"
        raise ApiError(
            422, f"unknown query parameter {shown(unknown[0])}: this route takes {takes}"
        )


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    """The names (aliases) of the query parameters of the route and its dependencies."""
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)
