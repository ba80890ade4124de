"""The reading order of a planned vs post-op comparison: the structures of a plan in the order
a clinician reads them (:func:`comparison_order`), and comparison rows sorted by it
(:func:`sort_comparison`); the CLI's CSV and JSON, the GUI's table and the report keep it."""

from __future__ import annotations

from planner.plan.model import Plan
from planner.plan.verification import ComparisonRow

__all__ = ["comparison_order", "sort_comparison"]


def comparison_order(plan: Plan) -> list[str]:
    """Structure names in the comparison's reading order: the prescription's reference
    structure (e.g. PTV_eval), the other targets, the organs at risk (a cord first: a name
    holding "cord"), then the rest; plan order within each group."""
    ref = plan.prescription.structure_id if plan.prescription is not None else None

    def rank(n: int) -> tuple[int, int]:
        s = plan.structures[n]
        if ref is not None and ref in (s.id, s.name):
            return (0, n)
        if s.role == "target":
            return (1, n)
        if s.role == "oar":
            return (2 if "cord" in s.name.lower() else 3, n)
        return (4, n)

    return [plan.structures[n].name for n in sorted(range(len(plan.structures)), key=rank)]


def sort_comparison(rows: list[ComparisonRow], plan: Plan) -> list[ComparisonRow]:
    """``rows`` by structure in :func:`comparison_order` (structures the plan does not name,
    such as :data:`SEED_COUNT_STRUCTURE`, after it); the order within a structure is kept."""
    order = {name: n for n, name in enumerate(comparison_order(plan))}
    return sorted(rows, key=lambda r: order.get(r.structure, len(order)))
