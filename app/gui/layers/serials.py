"""A number per object that is never given to another object, for "has it changed?" checks.

Layers redraw when what they show was replaced (a structure's voxels, a plan's needles: the
document's values are immutable, so a change is a new object). ``id(obj)`` cannot say so: once
the old object is freed, the new one is often allocated at the same address and gets the same
id, and the layer keeps a stale drawing (a sagittal outline 4 points short after a brush
stroke, on a loaded CI machine). :func:`serial_of` gives each live object its own serial from
a counter that only grows.
"""

from __future__ import annotations

import itertools
import weakref

_SERIALS: dict[int, tuple[weakref.ref, int]] = {}
_COUNTER = itertools.count(1)


def serial_of(obj: object) -> int:
    """The serial of ``obj`` (weak-referenceable: arrays, tuples of a plan are held by their
    plan, …): the same for the same object, never that of another object, alive or freed."""
    key = id(obj)
    hit = _SERIALS.get(key)
    if hit is not None and hit[0]() is obj:
        return hit[1]
    serial = next(_COUNTER)
    _SERIALS[key] = (weakref.ref(obj, lambda ref, key=key: _forget(key, ref)), serial)
    return serial


def _forget(key: int, ref: weakref.ref) -> None:
    """``ref``'s object was freed: drop its entry unless a newer object holds the slot."""
    hit = _SERIALS.get(key)
    if hit is not None and hit[0] is ref:
        del _SERIALS[key]
