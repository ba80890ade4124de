"""Reviewing a post-op verification: undoable seed edits, the manual nudge, and re-verification.

The detector is good, not perfect: a reviewer adds a seed it missed, deletes a calcification it
took for one, merges a seed split in two and splits a cluster it counted as one.
:class:`SeedEdits` is the editable list of detected seeds (post-op CT frame, LPS mm) with a
Qt-free linear undo history of whole snapshots (a few hundred seeds: kilobytes per step), and a
psygnal ``changed`` event. :class:`PostopReview` adds the registration (the automatic result,
then any manual nudge, also undoable) and :func:`reverify` recomputes the matching and the
post-plan dose from the reviewed seeds and transform without detecting or registering again.

Nothing here changes the plan: like :func:`planner.postop.verify.verify_plan`, the result is a
new :class:`~planner.postop.verify.Verification` whose ``implanted_plan`` is a new value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from psygnal import Signal

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Plan, Seed
from planner.postop.detection.detect import SEED_LENGTH_MM, DetectionResult
from planner.postop.locations import locate_seeds
from planner.postop.match import match_seeds, needle_deviations
from planner.postop.register import RegistrationResult, RigidTransform
from planner.postop.verify import (
    Verification,
    compare_dosimetry,
    location_rows,
    sort_comparison,
)

__all__ = ["EditedSeeds", "PostopReview", "SeedEdits", "nudge_transform", "reverify"]


@dataclass(frozen=True)
class EditedSeeds:
    """One state of the reviewed seeds: ``positions_mm`` ``(N, 3)`` and unit ``axes``
    ``(N, 3)`` in the post-op CT frame (LPS mm), ``confidence`` ``(N,)`` (1 for a seed the
    reviewer placed), ``origin`` ``(N,)`` of "detected" | "added" | "merged" | "split"."""

    positions_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    confidence: NDArray[np.float64]
    origin: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.positions_mm)

    @classmethod
    def from_detection(cls, detection: DetectionResult) -> EditedSeeds:
        n = len(detection.seeds)
        return cls(
            detection.positions_mm.copy(),
            detection.axes.copy(),
            np.array([s.confidence for s in detection.seeds], dtype=np.float64).reshape(n),
            ("detected",) * n,
        )

    def _with(
        self,
        keep: NDArray[np.bool_],
        positions_mm: ArrayLike = (),
        axes: ArrayLike = (),
        origin: str = "added",
    ) -> EditedSeeds:
        p = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
        a = _unit_rows(np.asarray(axes, dtype=np.float64).reshape(-1, 3))
        return EditedSeeds(
            np.vstack([self.positions_mm[keep], p]),
            np.vstack([self.axes[keep], a]),
            np.concatenate([self.confidence[keep], np.ones(len(p))]),
            tuple(o for o, k in zip(self.origin, keep, strict=True) if k) + (origin,) * len(p),
        )


def _unit_rows(a: NDArray[np.float64]) -> NDArray[np.float64]:
    n = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(~(n > 0)):
        raise InputError("a seed axis must not be zero")
    return a / n


class SeedEdits:
    """The reviewed seeds with undo/redo (module docstring). Indices refer to :attr:`seeds`.

    Events: ``changed(label)`` after every edit, undo and redo.
    """

    changed = Signal(str)

    def __init__(self, seeds: EditedSeeds) -> None:
        self._seeds = seeds
        self._undo: list[tuple[str, EditedSeeds]] = []
        self._redo: list[tuple[str, EditedSeeds]] = []

    @property
    def seeds(self) -> EditedSeeds:
        return self._seeds

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str:
        return self._undo[-1][0] if self._undo else ""

    @property
    def redo_label(self) -> str:
        return self._redo[-1][0] if self._redo else ""

    def _push(self, label: str, new: EditedSeeds) -> None:
        self._undo.append((label, self._seeds))
        self._redo.clear()
        self._seeds = new
        self.changed.emit(label)

    def undo(self) -> bool:
        if not self._undo:
            return False
        label, old = self._undo.pop()
        self._redo.append((label, self._seeds))
        self._seeds = old
        self.changed.emit(f"Undo {label}")
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        label, new = self._redo.pop()
        self._undo.append((label, self._seeds))
        self._seeds = new
        self.changed.emit(f"Redo {label}")
        return True

    # ------------------------------------------------------------------ queries
    def nearest(self, point_mm: ArrayLike, *, within_mm: float = 5.0) -> int | None:
        """Index of the seed nearest ``point_mm`` (post-op frame), if within ``within_mm``."""
        if not len(self._seeds):
            return None
        d = np.linalg.norm(self._seeds.positions_mm - np.asarray(point_mm, float), axis=1)
        i = int(np.argmin(d))
        return i if d[i] <= within_mm else None

    def _check(self, indices: Sequence[int]) -> list[int]:
        out = sorted({int(i) for i in indices})
        if any(i < 0 or i >= len(self._seeds) for i in out):
            raise IndexError(f"seed index out of range 0..{len(self._seeds) - 1}")
        return out

    # ------------------------------------------------------------------ edits
    def add(self, position_mm: ArrayLike, axis: ArrayLike = (0.0, 0.0, 1.0)) -> None:
        """A seed the detector missed, at ``position_mm`` (post-op frame, LPS mm)."""
        p = np.asarray(position_mm, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(p)):
            raise InputError("a seed position must be finite")
        keep = np.ones(len(self._seeds), dtype=bool)
        self._push("Add seed", self._seeds._with(keep, [p], [axis], "added"))

    def delete(self, indices: Sequence[int]) -> None:
        """Remove seeds that are not seeds (a calcification, a marker)."""
        idx = self._check(indices)
        if not idx:
            return
        keep = np.ones(len(self._seeds), dtype=bool)
        keep[idx] = False
        label = "Delete seed" if len(idx) == 1 else f"Delete {len(idx)} seeds"
        self._push(label, self._seeds._with(keep))

    def merge(self, indices: Sequence[int]) -> None:
        """Replace two or more seeds (one seed split in two) by one at their mean position,
        with the mean of their axes (signs aligned to the first)."""
        idx = self._check(indices)
        if len(idx) < 2:
            raise InputError("merging needs at least two seeds")
        s = self._seeds
        axes = s.axes[idx] * np.sign(s.axes[idx] @ s.axes[idx[0]] + 1e-12)[:, None]
        axis = axes.mean(axis=0)
        if not np.linalg.norm(axis) > 1e-6:
            axis = s.axes[idx[0]]
        keep = np.ones(len(s), dtype=bool)
        keep[idx] = False
        self._push(
            f"Merge {len(idx)} seeds",
            s._with(keep, [s.positions_mm[idx].mean(0)], [axis], "merged"),
        )

    def split(self, index: int, n: int = 2, *, spacing_mm: float = SEED_LENGTH_MM) -> None:
        """Replace one seed (a cluster counted as one) by ``n`` seeds along its axis,
        ``spacing_mm`` apart centre to centre (default: end to end), centred where it was."""
        (i,) = self._check([index])
        if n < 2:
            raise InputError("splitting needs n ≥ 2")
        s = self._seeds
        offsets = (np.arange(n) - (n - 1) / 2.0) * float(spacing_mm)
        p = s.positions_mm[i] + offsets[:, None] * s.axes[i]
        keep = np.ones(len(s), dtype=bool)
        keep[i] = False
        self._push(
            f"Split seed in {n}", s._with(keep, p, np.repeat(s.axes[i][None], n, 0), "split")
        )


def nudge_transform(
    transform: RigidTransform,
    shift_mm: ArrayLike = (0.0, 0.0, 0.0),
    rotation_deg: ArrayLike = (0.0, 0.0, 0.0),
    *,
    about_mm: ArrayLike | None = None,
) -> RigidTransform:
    """``transform`` followed by a manual correction in the planning frame: rotations about
    x, y, z (degrees, :meth:`RigidTransform.nudged` order) about the point ``about_mm``
    (default the origin), then a shift (LPS mm)."""
    c = np.zeros(3) if about_mm is None else np.asarray(about_mm, dtype=np.float64).reshape(3)
    rotated = transform.nudged((0, 0, 0), rotation_deg)
    extra = rotated.matrix @ transform.matrix.T  # the correction's rotation alone
    # Rotate about c: x' = E (x − c) + c = E x + (c − E c).
    return rotated.nudged(c - extra @ c + np.asarray(shift_mm, dtype=np.float64), (0, 0, 0))


class PostopReview:
    """A verification under review: the seed edits and the registration with its nudges.

    ``transform`` maps post-op CT points into the planning frame
    (:class:`~planner.postop.register.RigidTransform`); :meth:`nudge` composes a manual
    correction (undoable with :meth:`undo_nudge`). Events: ``transform_changed(transform)``.
    """

    transform_changed = Signal(object)

    def __init__(self, verification: Verification) -> None:
        #: The automatic result (detection, registration) every re-verification starts from.
        self.base = verification
        self.verification = verification
        self.automatic = verification.registration.transform
        self.transform = self.automatic
        self.edits = SeedEdits(EditedSeeds.from_detection(verification.detection))
        self._nudges: list[RigidTransform] = []
        #: The registration the review started from was stored in the plan already corrected
        #: by hand: it stays "nudged" until the automatic registration is run again.
        stored = verification.registration_record
        self._base_nudged = bool(stored is not None and stored.nudged)

    @property
    def nudged(self) -> bool:
        return self._base_nudged or self.transform != self.automatic

    def set_transform(self, transform: RigidTransform, *, nudged: bool | None = None) -> bool:
        """Show ``transform`` (a stored registration restored by undo/redo in the plan's
        history); the nudges made so far stay undoable. False when it is already shown."""
        if nudged is not None and transform == self.automatic:
            self._base_nudged = bool(nudged)
        if transform == self.transform:
            return False
        self._nudges.append(self.transform)
        self.transform = transform
        self.transform_changed.emit(transform)
        return True

    def set_automatic(self, transform: RigidTransform) -> None:
        """A new automatic registration (re-run): it becomes the base and is shown."""
        self._nudges.append(self.transform)
        self.automatic = transform
        self._base_nudged = False
        self.transform = transform
        self.transform_changed.emit(transform)

    def nudge(
        self,
        shift_mm: ArrayLike = (0.0, 0.0, 0.0),
        rotation_deg: ArrayLike = (0.0, 0.0, 0.0),
        *,
        about_mm: ArrayLike | None = None,
    ) -> RigidTransform:
        """Shift (LPS mm) and/or rotate (degrees about x, y, z) the post-op CT in the planning
        frame; rotations are about ``about_mm`` (planning frame; default the frame's origin)."""
        new = nudge_transform(self.transform, shift_mm, rotation_deg, about_mm=about_mm)
        self._nudges.append(self.transform)
        self.transform = new
        self.transform_changed.emit(new)
        return new

    def undo_nudge(self) -> bool:
        if not self._nudges:
            return False
        self.transform = self._nudges.pop()
        self.transform_changed.emit(self.transform)
        return True

    def reset_registration(self) -> None:
        """Back to the automatic registration (itself undoable)."""
        if self.transform != self.automatic:
            self._nudges.append(self.transform)
            self.transform = self.automatic
            self.transform_changed.emit(self.transform)

    def implanted_mm(self) -> NDArray[np.float64]:
        """``(N, 3)`` reviewed seeds in the planning frame (LPS mm)."""
        return self.transform.apply(self.edits.seeds.positions_mm)

    def reverify(
        self,
        plan: Plan,
        planning_ct: CTVolume,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> Verification:
        """:func:`reverify` with this review's seeds and transform; becomes :attr:`verification`."""
        v = reverify(
            self.base,
            plan,
            planning_ct,
            self.edits.seeds,
            self.transform,
            nudged=self.nudged,
            progress=progress,
            cancel=cancel,
        )
        self.verification = v
        return v


#: Warnings :func:`reverify` (re)writes: an earlier version of each is dropped.
_OWN_WARNINGS = ("seeds reviewed by hand", "registration corrected by hand")


def _unmatched_warning(w: str) -> bool:
    return "from every planned seed" in w


def reverify(
    base: Verification,
    plan: Plan,
    planning_ct: CTVolume,
    seeds: EditedSeeds,
    transform: RigidTransform,
    *,
    planned: PlanDosimetry | None = None,
    nudged: bool | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Verification:
    """The verification of ``plan`` with reviewed ``seeds`` (post-op frame) and ``transform``:
    matching, needle deviations, seed locations and the post-plan dose (same formalism, gate
    and migration distance as ``base``) are recomputed; the planned dosimetry is reused from
    ``base`` (or ``planned``). The implanted plan's registration record gets ``transform`` and
    ``nudged`` (default: ``transform`` differs from ``base``'s, or ``base``'s was nudged)."""
    if not len(seeds):
        raise InputError("no seeds left to verify (every detected seed was deleted)")
    report(progress, 0.0, "matching seeds")
    planned_mm = np.array([s.position_mm for s in plan.seeds], dtype=np.float64).reshape(-1, 3)
    implanted = transform.apply(seeds.positions_mm)
    axes = transform.apply_vectors(seeds.axes)
    gate_mm = base.match.gate_mm
    match = match_seeds(planned_mm, implanted, gate_mm=gate_mm)
    needles = needle_deviations(
        match,
        planned_mm,
        implanted,
        [s.needle_id for s in plan.seeds],
        {n.id: (n.entry_mm, n.tip_mm) for n in plan.needles},
    )
    warnings = [
        w for w in base.warnings if not w.startswith(_OWN_WARNINGS) and not _unmatched_warning(w)
    ]
    if match.unmatched_implanted:
        warnings.append(
            f"{len(match.unmatched_implanted)} detected seed(s) are more than {gate_mm:g} mm "
            "from every planned seed (migrated, or not seeds)"
        )
    edited = sum(o != "detected" for o in seeds.origin) + (
        len(base.detection.seeds) - sum(o == "detected" for o in seeds.origin)
    )
    if edited:
        warnings.append(f"seeds reviewed by hand: {edited} added, deleted, merged or split")
    record = base.registration_record
    if nudged is None:
        nudged = transform != base.registration.transform or bool(record and record.nudged)
    if nudged:
        warnings.append("registration corrected by hand (manual nudge)")
    if record is not None:
        record = replace(record, matrix_lps_mm=transform.matrix4(), nudged=bool(nudged))  # type: ignore[arg-type]
    implanted_plan = base.implanted_plan.evolve(
        seeds=tuple(
            Seed(id=f"sd-postop-{i + 1:03d}", position_mm=tuple(p), axis=tuple(a))
            for i, (p, a) in enumerate(zip(implanted, axes, strict=True))
        ),
        registration=record,
    )
    migration_mm = base.locations.migration_mm if base.locations is not None else 10.0
    reference = base.intraop_plan if base.intraop_plan is not None else plan
    locations = locate_seeds(reference, implanted, migration_mm=migration_mm)
    planned_locations = base.planned_locations or locate_seeds(
        plan, planned_mm, migration_mm=migration_mm
    )
    warnings = [w for w in warnings if " migrated: " not in w]
    if locations.of("migrated"):
        warnings.append(
            f"{len(locations.of('migrated'))} seed(s) migrated: outside the target and more "
            f"than {migration_mm:g} mm from every planned needle"
        )
    postop = compute_plan_dosimetry(
        implanted_plan,
        planning_ct,
        formalism=base.formalism,
        progress=sub_progress(progress, 0.05, 1.0),
        cancel=cancel,
    )
    planned_dose = planned if planned is not None else base.planned
    registration: RegistrationResult = replace(base.registration, transform=transform)
    report(progress, 1.0, "verified")
    return Verification(
        detection=base.detection,
        registration=registration,
        match=match,
        needles=needles,
        implanted_plan=implanted_plan,
        implanted_mm=implanted,
        planned=planned_dose,
        postop=postop,
        comparison=sort_comparison(compare_dosimetry(planned_dose, postop, base.intraop), plan)
        + location_rows(planned_locations, locations, base.intraop_locations),
        formalism=base.formalism,
        warnings=warnings,
        locations=locations,
        planned_locations=planned_locations,
        intraop=base.intraop,
        intraop_plan=base.intraop_plan,
        intraop_locations=base.intraop_locations,
    )
