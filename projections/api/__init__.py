"""The HTTP read API: `projections.api:app` (run it with `ledger serve`)."""

from projections.api.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
