"""FlexMeasures' paging of a list route: `page`, `per_page` and a text `filter`."""

from collections.abc import Callable, Sequence
from typing import Any


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
