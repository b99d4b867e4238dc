"""A call as a store has it: the same fields as :class:`~webhook.model.Call`, its collections read from the
store when first used. No Flask, no I/O of its own (the loader is the store's)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .model import COLLECTIONS, Call

#: Reads one collection of a stored call (``"history"``, ``"participants"``, ``"operations"``, ``"tones"``).
Loader = Callable[[str], Any]
_NOT_READ = object()
#: The fields of a call that are its own record, not collections.
_OWN_FIELDS = tuple(name for name in Call.__dataclass_fields__ if name not in COLLECTIONS)


def _read_when_used(name: str) -> property:
    def get(self: StoredCall) -> Any:
        value = self.__dict__.get("_" + name, _NOT_READ)
        if value is _NOT_READ:
            value = self.__dict__["_" + name] = self._loader(name)
        return value

    def put(self: StoredCall, value: Any) -> None:
        self.__dict__["_" + name] = value

    return property(get, put, doc=f"The call's {name}, read from the store when first used.")


class StoredCall(Call):
    """A call as a store has it, whose history, roster, operations and tones are read when first used.

    What handlers receive and the read API shows: the same fields as :class:`Call`; reading a collection costs
    one read of the store (the history as it was when the event was committed; the roster, operations and tones
    as they are when first read).
    """

    history = _read_when_used("history")
    participants = _read_when_used("participants")
    operations = _read_when_used("operations")
    tones = _read_when_used("tones")
    _loader: Loader

    @classmethod
    def of(cls, call: Call, loader: Loader, known: Mapping[str, Any] | None = None) -> StoredCall:
        """``call``'s fields, with the collections in ``known`` as given and the others read by ``loader``."""
        stored = cls.__new__(cls)
        fields = stored.__dict__
        if type(call) is Call:  # its fields are its attributes: copied at once, then its collections dropped
            fields.update(call.__dict__)
            for name in COLLECTIONS:
                del fields[name]
        else:
            fields.update({name: getattr(call, name) for name in _OWN_FIELDS})
        for name, value in (known or {}).items():
            fields["_" + name] = value
        stored._loader = loader
        return stored

    def __repr__(self) -> str:
        return f"StoredCall(id={self.id!r}, state={self.state!r})"
