"""FlexMeasures' paging of a list route: `page`, `per-page` (legacy `per_page`, default 10)
and a text `filter`."""

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query

PerPage = Annotated[int | None, Query(ge=1, le=1000)]  # the legacy name, `per_page`
PerPageNow = Annotated[int | None, Query(alias="per-page", ge=1, le=1000)]
DEFAULT_PER_PAGE = 10


def per_page_given(now: int | None, legacy: int | None) -> int:
    """`per-page`, else `per_page`, else the default (the current name wins, as FlexMeasures)."""
    return now or legacy or DEFAULT_PER_PAGE


def page(
    items: list[Any],
    page: int | None,
    per_page: int,
    text: str | None,
    fields: Callable[[Any], Sequence[Any]],
    envelope: Any,
) -> Any:
    """The items whose `fields` hold `text` (case-insensitively); without `page`, all of them
    as a list, else that page in `envelope` with the counts before and after filtering."""
    total = len(items)
    if text:
        needle = text.casefold()
        items = [i for i in items if any(needle in str(f).casefold() for f in fields(i))]
    if page is None:
        return items
    start = (page - 1) * per_page
    return envelope(
        data=items[start : start + per_page], num_records=total, filtered_records=len(items)
    )
