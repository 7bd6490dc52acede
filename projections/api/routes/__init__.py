"""The read API's routes, a router per resource; `create_app` includes them in this order (the
order of the OpenAPI document)."""

from projections.api.routes import accounts, auth, changes, ops, reviews, roles, users

ROUTERS = (
    ops.router,
    auth.router,
    users.router,
    accounts.router,
    roles.router,
    changes.router,
    reviews.router,
)

__all__ = ["ROUTERS"]
