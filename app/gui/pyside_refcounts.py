"""Keep ``None``, ``True`` and ``False`` alive under PySide6 builds that drop references to them.

The PySide6/shiboken6 6.12.0 wheels (``cp310-abi3``) return ``None`` from every void method
(``widget.update()``, ``label.setText()``, ``QTimer.singleShot()`` …) and ``True`` from
``Signal.emit()`` without taking a reference for the caller: they were built with limited-API
headers that treat these singletons as immortal, which they are only from Python 3.12 on
(CPython gh-134989, fixed in CPython's headers in June 2025). On Python 3.10/3.11 — Debian 12
ships 3.11.2 — every such call therefore lowers the singleton's reference count by one, and
after some thousands of Qt calls the process aborts with "Fatal Python error: none_dealloc"
(or ``bool_dealloc``). Measured here: 100 ``widget.update()`` calls, ``sys.getrefcount(None)``
−100; 100 ``emit()`` calls, ``sys.getrefcount(True)`` −100.

The real fix is a PySide6 build without the defect (or Python ≥ 3.12). Until then
:func:`protect_singletons` — called once by :func:`app.gui.main.create_application` — measures
the loss and, only when it is there (CPython < 3.12), adds :data:`MARGIN` references to each of
the three singletons. They are never deallocated anyway, so the extra references cost nothing;
2⁴⁰ of them last for years of continuous Qt calls.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["MARGIN", "lost_references", "protect_singletons", "protected"]

MARGIN = 2**40
_PROBE_CALLS = 64
_protected = False


def lost_references() -> dict[str, int]:
    """References to None and True lost per call by a void PySide6 method and by ``emit()``
    (0 for a correct build; measured with ``_PROBE_CALLS`` calls each)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    none_before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("probe")
    none_lost = none_before - sys.getrefcount(None)
    true_before = sys.getrefcount(True)
    for _ in range(_PROBE_CALLS):
        probe.ping.emit()
    true_lost = true_before - sys.getrefcount(True)
    _add_references(None, max(none_lost, 0))  # give back what the probe took
    _add_references(True, max(true_lost, 0))
    return {
        "None": round(none_lost / _PROBE_CALLS),
        "True": round(true_lost / _PROBE_CALLS),
    }


def protected() -> bool:
    """True once :func:`protect_singletons` added the margin in this process."""
    return _protected


def protect_singletons() -> bool:
    """Add :data:`MARGIN` references to None, True and False if this PySide6 loses them.

    Returns True when the margin was added (now or earlier in this process). Does nothing on
    Python ≥ 3.12 (immortal singletons) or another interpreter.
    """
    global _protected
    if _protected:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    lost = lost_references()
    if lost["None"] <= 0 and lost["True"] <= 0:
        return False
    for singleton in (None, True, False):
        _add_references(singleton, MARGIN)
    _protected = True
    return True


def _add_references(obj: object, n: int) -> None:
    """``ob_refcnt += n`` (CPython < 3.12: the first field of every object, a Py_ssize_t)."""
    if n <= 0:
        return
    refcnt = ctypes.c_ssize_t.from_address(id(obj))
    refcnt.value += n
