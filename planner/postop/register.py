"""Rigid registration of the post-op CT to the planning CT, on bone (SimpleITK).

The metric is Mattes mutual information sampled only on the planning CT's bone (HU in
[200, 1800]: vertebrae and ribs, which do not move between the scans the way soft tissue does)
with the post-op CT's metal (HU ≥ 2000 and its 3 mm neighbourhood) masked out of the moving
image, because seeds, screws and their streaks exist only in the post-op scan. It is
initialised by geometry (the volumes' centres, or — when both scans hold seeds — the seed
clouds' centroids), then optimised with regular-step gradient descent over two resolution
levels (shrink 4 and 2; at 2 the sampling is still finer than a seed's placement error).

The result is the rigid map ``x_plan = R · x_postop + t`` (LPS mm), stored in the plan as a
4 × 4 matrix (:class:`planner.plan.model.Registration`, :meth:`RigidTransform.matrix4`);
:meth:`RigidTransform.nudged` applies a manual correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional name)
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.progress import CancelFn, Cancelled, ProgressFn, report
from planner.imaging.volume import CTVolume

__all__ = ["RegistrationResult", "RigidTransform", "register_rigid", "sitk_image"]


@dataclass(frozen=True)
class RigidTransform:
    """``x_plan = rotation @ x_postop + translation_mm`` (LPS mm)."""

    rotation: tuple[tuple[float, float, float], ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def matrix(self) -> NDArray[np.float64]:
        return np.asarray(self.rotation, dtype=np.float64)

    def apply(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Map post-op LPS points ``(..., 3)`` into the planning frame."""
        p = np.asarray(points_mm, dtype=np.float64)
        return p @ self.matrix.T + np.asarray(self.translation_mm)

    def apply_vectors(self, vectors: ArrayLike) -> NDArray[np.float64]:
        """Rotate directions ``(..., 3)`` (seed axes) into the planning frame."""
        return np.asarray(vectors, dtype=np.float64) @ self.matrix.T

    def nudged(
        self, shift_mm: ArrayLike = (0, 0, 0), rotation_deg: ArrayLike = (0, 0, 0)
    ) -> RigidTransform:
        """This transform followed by a manual correction: rotations (about x, y, z, degrees)
        about the origin, then a shift (LPS mm)."""
        ax, ay, az = np.radians(np.asarray(rotation_deg, dtype=np.float64))
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        extra = rz @ ry @ rx
        rot = extra @ self.matrix
        trans = extra @ np.asarray(self.translation_mm) + np.asarray(shift_mm, dtype=np.float64)
        return RigidTransform(
            tuple(tuple(float(v) for v in row) for row in rot),
            tuple(float(v) for v in trans),
        )

    def to_dict(self) -> dict[str, list]:
        return {
            "rotation": [list(r) for r in self.rotation],
            "translation_mm": list(self.translation_mm),
        }

    def matrix4(self) -> tuple[tuple[float, float, float, float], ...]:
        """The 4 × 4 homogeneous matrix (``x_plan = M · (x_postop, 1)``, LPS mm), as stored in
        the plan (:class:`planner.plan.model.Registration`)."""
        return (
            *(
                (*(float(v) for v in row), float(t))
                for row, t in zip(self.rotation, self.translation_mm, strict=True)
            ),
            (0.0, 0.0, 0.0, 1.0),
        )  # type: ignore[return-value]

    @classmethod
    def from_matrix4(cls, matrix: ArrayLike) -> RigidTransform:
        """The transform of a 4 × 4 rigid matrix (e.g. a stored registration's)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4):
            raise InputError(f"a rigid transform needs a 4×4 matrix, got shape {m.shape}")
        return cls(
            tuple(tuple(float(v) for v in r) for r in m[:3, :3]),
            tuple(float(v) for v in m[:3, 3]),
        )

    @classmethod
    def from_dict(cls, d: dict) -> RigidTransform:  # type: ignore[type-arg]
        rot = np.asarray(d["rotation"], dtype=np.float64)
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5):
            raise InputError("stored registration is not a rotation matrix")
        return cls(
            tuple(tuple(float(v) for v in r) for r in rot),
            tuple(float(v) for v in d["translation_mm"]),
        )


@dataclass(frozen=True)
class RegistrationResult:
    transform: RigidTransform
    metric_value: float | None  # final Mattes MI (negative: lower is better); None: not run
    iterations: int
    initialised_by: str  # "geometry" or "seed clouds"
    stop_reason: str


def sitk_image(ct: CTVolume) -> sitk.Image:
    """``ct`` as a SimpleITK image (float32 HU, its LPS origin, spacing and direction)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(ct.hu, dtype=np.float32))
    g = ct.geometry
    img.SetOrigin(tuple(float(v) for v in g.origin_mm))
    img.SetSpacing(tuple(float(v) for v in g.spacing_mm))
    img.SetDirection(tuple(float(v) for v in np.asarray(g.direction).reshape(-1)))
    return img


def _crop(ct: CTVolume, centre_mm: NDArray[np.float64], half_mm: float) -> CTVolume:
    """The part of ``ct`` within ± ``half_mm`` of ``centre_mm`` (index box; same geometry)."""
    g = ct.geometry
    corners = centre_mm + half_mm * np.array(
        [[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=np.float64
    )
    kji = g.world_to_zyx(corners)
    lo = np.clip(np.floor(kji.min(axis=0)).astype(int), 0, np.asarray(g.shape_zyx) - 1)
    hi = np.clip(np.ceil(kji.max(axis=0)).astype(int) + 1, lo + 1, np.asarray(g.shape_zyx))
    if np.any(hi - lo < 8):
        raise InputError("the region to register lies (almost) outside the CT")
    hu = ct.hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    origin = g.zyx_to_world(lo.astype(np.float64))
    geo = type(g)(
        shape_zyx=tuple(int(v) for v in hu.shape),
        origin_mm=origin,
        spacing_mm=np.asarray(g.spacing_mm),
        direction=np.asarray(g.direction),
    )
    return CTVolume(np.ascontiguousarray(hu), geo, ct.info)


def _mask(array_zyx: NDArray[np.bool_], like: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    m.CopyInformation(like)
    return m


def register_rigid(
    planning: CTVolume,
    postop: CTVolume,
    *,
    planning_seeds_mm: ArrayLike | None = None,
    postop_seeds_mm: ArrayLike | None = None,
    around_mm: ArrayLike | None = None,
    half_size_mm: float = 75.0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> RegistrationResult:
    """Register ``postop`` to ``planning`` on bone; see the module docstring.

    ``planning_seeds_mm`` / ``postop_seeds_mm`` (``(N, 3)``, LPS mm): planned and detected
    seeds; when both are given their centroids initialise the translation. ``around_mm``: a
    point (the target's centre) around which both scans are cropped to a box of ±
    ``half_size_mm`` before registering: the bone near the implant is what must agree, and the
    crop makes the registration several times faster.
    """
    import scipy.ndimage as ndi

    if around_mm is not None:
        planning = _crop(planning, np.asarray(around_mm, dtype=np.float64), half_size_mm)
        postop = _crop(postop, np.asarray(around_mm, dtype=np.float64), half_size_mm + 15.0)

    fixed = sitk_image(planning)
    moving = sitk_image(postop)
    bone = (planning.hu >= 200) & (planning.hu <= 1800)
    if bone.sum() < 1000:
        raise InputError("the planning CT shows too little bone (HU 200-1800) to register on")
    # Bone and its surroundings (≈ 5 mm): MI needs the bone/soft-tissue edges, not bone alone.
    sp = np.asarray(planning.geometry.spacing_mm, dtype=np.float64)[::-1]
    reach = np.maximum(np.rint(5.0 / sp).astype(int), 1)
    bone = ndi.maximum_filter(bone, size=tuple(int(2 * r + 1) for r in reach))
    metal = ndi.binary_dilation(postop.hu >= 2000, iterations=3)
    fixed_mask = _mask(bone, fixed)
    moving_mask = _mask(~metal, moving)

    init_by = "geometry"
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    if planning_seeds_mm is not None and postop_seeds_mm is not None:
        a = np.asarray(planning_seeds_mm, dtype=np.float64).reshape(-1, 3)
        b = np.asarray(postop_seeds_mm, dtype=np.float64).reshape(-1, 3)
        if len(a) and len(b):
            # sitk maps fixed → moving points: t = centroid(post-op) − centroid(plan).
            initial = sitk.Euler3DTransform()
            initial.SetCenter(tuple(float(v) for v in a.mean(axis=0)))
            initial.SetTranslation(tuple(float(v) for v in b.mean(axis=0) - a.mean(axis=0)))
            init_by = "seed clouds"

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, seed=12345)  # fixed seed: the same answer every run
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetMetricMovingMask(moving_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=120,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(initial, inPlace=False)
    state = {"iter": 0, "cancelled": False}

    def on_iteration() -> None:
        state["iter"] += 1
        level = reg.GetCurrentLevel()
        report(
            progress,
            min(0.99, (level + min(1.0, reg.GetOptimizerIteration() / 120)) / 2),
            f"registering (level {level + 1} of 2)",
        )
        if cancel is not None and cancel():
            state["cancelled"] = True
            reg.StopRegistration()

    reg.AddCommand(sitk.sitkIterationEvent, on_iteration)
    final = reg.Execute(fixed, moving)
    if state["cancelled"]:
        raise Cancelled("registration cancelled")
    report(progress, 1.0, "registered")
    # sitk's transform maps planning (fixed) points to post-op (moving) points; invert it.
    inv = final.GetInverse()
    composite = sitk.CompositeTransform(inv)
    origin = np.array(composite.TransformPoint((0.0, 0.0, 0.0)))
    cols = [np.array(composite.TransformPoint(tuple(e))) - origin for e in np.eye(3)]
    rot = np.column_stack(cols)
    u, _, vt = np.linalg.svd(rot)
    rot = u @ vt  # exactly orthonormal
    return RegistrationResult(
        transform=RigidTransform(
            tuple(tuple(float(v) for v in r) for r in rot), tuple(float(v) for v in origin)
        ),
        metric_value=float(reg.GetMetricValue()),
        iterations=int(state["iter"]),
        initialised_by=init_by,
        stop_reason=reg.GetOptimizerStopConditionDescription(),
    )
