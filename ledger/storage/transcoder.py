"""eventsourcing's JSON transcoder, decoding with orjson.

Encoding is the library's own (the stored bytes stay exactly as they were). Decoding parses
with orjson and then replaces each `{"_type_": ..., "_data_": ...}` object by its value, inner
objects first, as the library's `object_hook` does. orjson reads integers beyond 64 bits as
floats, and refuses NaN, Infinity and lone surrogates, which Python's `json` accepts: a state
holding a float, or one orjson refuses, is decoded by the library's own decoder instead, so
every state decodes to exactly what the library gives (tested on every event type).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Transcoding,
    TranscodingNotRegisteredError,
)

_UUID_CACHE_SIZE: Final = 65_536


class _Inexact(Exception):
    """The state holds a value orjson may not read as `json` does: decode it with `json`."""


class FastJSONTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        # the same ids recur all through a log (actors, users, accounts): UUIDs are immutable,
        # so one instance per id serves them all, bounded (cleared when full)
        self._uuids: dict[str, UUID] = {}
        # whether "datetime_iso" is the library's own transcoding: then read by
        # `datetime.fromisoformat` here, without two calls through it (most events hold one)
        self._iso_datetimes = False

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        self._iso_datetimes = type(self.names.get("datetime_iso")) is DatetimeAsISO

    def decode(self, data: bytes) -> Any:
        try:
            value = orjson.loads(data)
            if type(value) is dict:
                return self._object(value)
            if type(value) is list:
                self._list(value)
                return value
            if type(value) is float:
                raise _Inexact
            return value
        except (orjson.JSONDecodeError, _Inexact, RecursionError):
            # RecursionError: nesting this walk (two frames a level) cannot follow, which
            # the library's decoder may
            return super().decode(data)

    def _object(self, obj: dict[str, Any]) -> Any:
        for key, value in obj.items():
            kind = type(value)
            if kind is dict:
                obj[key] = self._inner(value)
            elif kind is list:
                self._list(value)
            elif kind is float:
                raise _Inexact
        if len(obj) == 2 and "_type_" in obj and "_data_" in obj:
            return self._transcoded(obj["_type_"], obj["_data_"])
        return obj

    def _inner(self, obj: dict[str, Any]) -> Any:
        """A nested object: most are a transcoded UUID or datetime, decoded here at once."""
        if len(obj) == 2:
            name, data = obj.get("_type_"), obj.get("_data_")
            if type(data) is str:
                if name == "datetime_iso" and self._iso_datetimes:
                    return datetime.fromisoformat(data)
                if name == "uuid_hex":
                    uuid = self._uuids.get(data)
                    if uuid is not None:
                        return uuid
                if "_type_" in obj:
                    return self._transcoded(name, data)
        return self._object(obj)

    def _list(self, items: list[Any]) -> None:
        for index, value in enumerate(items):
            kind = type(value)
            if kind is dict:
                items[index] = self._inner(value)
            elif kind is list:
                self._list(value)
            elif kind is float:
                raise _Inexact

    def _transcoded(self, name: Any, data: Any) -> Any:
        if name == "uuid_hex" and type(data) is str:
            uuid = self._uuids.get(data)
            if uuid is None:
                if len(self._uuids) >= _UUID_CACHE_SIZE:
                    self._uuids.clear()
                uuid = self._uuids[data] = self.names[name].decode(data)
            return uuid
        try:
            transcoding = self.names[name]
        except (KeyError, TypeError):
            return self._decode_obj({"_type_": name, "_data_": data})  # the library's error
        return transcoding.decode(data)


__all__ = ["FastJSONTranscoder", "TranscodingNotRegisteredError"]
