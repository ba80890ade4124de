"""Layers decide "changed?" by :func:`app.gui.layers.serials.serial_of`, never by ``id``.

A brush stroke replaces a structure's voxel array at every move; the old array is freed and
the next one is often allocated at the same address, with the same ``id``. A layer keyed on
``id`` then keeps its old drawing (a sagittal outline 36 of 40 points long after a stroke, on
a loaded CI machine). Serials come from a counter and are never reused.
"""

from __future__ import annotations

import gc

import numpy as np

from app.gui.layers.serials import _SERIALS, serial_of
from app.gui.layers.structures import DisplayedStructure
from dose.geometry import GridGeometry
from planner.imaging.volume import Mask


def test_a_new_array_at_a_freed_arrays_address_gets_a_new_serial() -> None:
    a = np.zeros((4, 5, 6), dtype=bool)
    first = serial_of(a)
    assert serial_of(a) == first  # the same object: the same serial
    old_id = id(a)
    del a
    gc.collect()
    seen = {first}
    reused = False
    kept = []  # the arrays tried, held so that each new one takes a fresh address
    for _ in range(200):
        b = np.zeros((4, 5, 6), dtype=bool)
        reused |= id(b) == old_id
        s = serial_of(b)
        assert s not in seen
        seen.add(s)
        if reused:
            break
        kept.append(b)
    # Whether the allocator reused the address above depends on the machine: the same case,
    # forced. ``fresh`` finds the slot of its id holding another array's entry, as a new array
    # at a freed one's address would before the freed one's entry is dropped.
    other = np.zeros((4, 5, 6), dtype=bool)
    fresh = np.zeros((4, 5, 6), dtype=bool)
    serial_other = serial_of(other)
    _SERIALS[id(fresh)] = _SERIALS[id(other)]
    assert serial_of(fresh) not in seen | {serial_other}
    assert serial_of(other) == serial_other


def test_serials_of_freed_objects_are_forgotten() -> None:
    n = len(_SERIALS)
    arrays = [np.zeros(3) for _ in range(50)]
    for x in arrays:
        serial_of(x)
    assert len(_SERIALS) >= n + 50
    del arrays, x
    gc.collect()
    assert len(_SERIALS) <= n + 1


def test_a_structure_drawing_changes_version_when_its_voxels_are_replaced() -> None:
    geo = GridGeometry((4, 5, 6), np.zeros(3), np.ones(3))
    versions = set()
    for _ in range(20):
        mask = Mask("GTV", np.zeros((4, 5, 6), dtype=bool), geo)
        item = DisplayedStructure("GTV", "GTV", (255, 0, 0), None, mask)
        assert item.version == item.version
        versions.add(item.version)
        del mask, item
    # (by ``id`` of the voxels: one value for all 20 masks, measured)
    assert len(versions) == 20
