"""`.seedplan` files: round trip, strict validation, versions and migration, damaged files."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from planner.plan.plan_file import (
    FORMAT_VERSION,
    load_plan,
    plan_content_sha256,
    plan_file_bytes,
    save_plan,
)
from tests.plan_builders import full_plan, plans_equal, small_ct


def _one_line_naming(exc: pytest.ExceptionInfo[InputError], path: Path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    return msg


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _rehash(members: dict[str, bytes], **manifest_changes: object) -> dict[str, bytes]:
    """Recompute the manifest's checksums (a tamperer who knows the format)."""
    man = json.loads(members["manifest.json"])
    man["members"] = {
        n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != "manifest.json"
    }
    h = hashlib.sha256()
    for n in sorted(man["members"]):
        h.update(f"{n}\0{man['members'][n]}\n".encode())
    man["content_sha256"] = h.hexdigest()
    man.update(manifest_changes)
    members["manifest.json"] = json.dumps(man).encode()
    return members


def test_round_trip_keeps_every_field_and_voxel(tmp_path: Path) -> None:
    plan = full_plan(random_masks=True)
    path = save_plan(plan, tmp_path / "p.seedplan")
    loaded = load_plan(path)
    assert plans_equal(plan, loaded.plan)
    assert loaded.format_version == f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
    assert not loaded.migrated
    assert loaded.content_sha256 == plan_content_sha256(plan)
    assert loaded.plan.structures[0].mask.flags.writeable is False
    # Deterministic: equal plans give equal bytes (the save time aside).
    assert plan_file_bytes(plan, saved_utc="x") == plan_file_bytes(
        full_plan(random_masks=True), saved_utc="x"
    )
    # Masks are stored in their bounding box: a small structure costs little.
    small = full_plan()
    sizes = {n: len(d) for n, d in _members(plan_file_bytes(small)).items()}
    assert sizes["masks/st-000000000000.bits"] < 0.2 * small.structures[0].mask.size / 8


def test_existing_file_is_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    path = save_plan(full_plan(), tmp_path / "p.seedplan")
    old = path.read_bytes()
    with pytest.raises(InputError, match="exists; use --force") as exc:
        save_plan(full_plan(random_masks=True), path)
    _one_line_naming(exc, path)
    assert path.read_bytes() == old
    save_plan(full_plan(random_masks=True), path, force=True)
    assert plans_equal(load_plan(path).plan, full_plan(random_masks=True))
    with pytest.raises(InputError, match=re.escape("must end in .seedplan")):
        save_plan(full_plan(), tmp_path / "p.zip")


def test_truncated_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    data = plan_file_bytes(full_plan(random_masks=True))
    for cut in (len(data) // 2, len(data) - 30, 100):
        path = tmp_path / f"cut{cut}.seedplan"
        path.write_bytes(data[:cut])
        with pytest.raises(InputError) as exc:
            load_plan(path)
        msg = _one_line_naming(exc, path)
        assert "truncated" in msg or "damaged" in msg
        assert path.read_bytes() == data[:cut]


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    data = bytearray(plan_file_bytes(full_plan(random_masks=True)))
    rng = np.random.default_rng(3)
    for k in range(20):
        bad = bytearray(data)
        i = int(rng.integers(0, len(bad)))
        bad[i] ^= 0x10
        path = tmp_path / f"flip{k}.seedplan"
        path.write_bytes(bytes(bad))
        try:
            load_plan(path)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        else:  # a flip in zip padding/metadata that changes no content is harmless
            assert plans_equal(load_plan(path).plan, full_plan(random_masks=True))


def test_tampered_members_are_refused(tmp_path: Path) -> None:
    members = _members(plan_file_bytes(full_plan()))
    doc = json.loads(members["plan.json"])
    doc["prescription"]["dose_gy"] = 160.0
    edited = dict(members, **{"plan.json": json.dumps(doc).encode()})
    path = tmp_path / "edited.seedplan"
    path.write_bytes(_zip(edited))
    with pytest.raises(InputError, match=re.escape("plan.json does not match its checksum")) as exc:
        load_plan(path)
    _one_line_naming(exc, path)
    # A mask changed on its own: the checksum catches it.
    bits = bytearray(members["masks/st-000000000001.bits"])
    bits[len(bits) // 2] ^= 0xFF
    path2 = tmp_path / "mask.seedplan"
    path2.write_bytes(_zip(dict(members, **{"masks/st-000000000001.bits": bytes(bits)})))
    with pytest.raises(InputError, match=r"st-000000000001\.bits does not match its checksum"):
        load_plan(path2)
    # Even with the checksums recomputed, the mask must agree with plan.json's voxel count.
    path3 = tmp_path / "rehashed.seedplan"
    path3.write_bytes(_zip(_rehash(dict(members, **{"masks/st-000000000001.bits": bytes(bits)}))))
    with pytest.raises(InputError, match=r"structures\[1\].mask.voxel_count: .* does not match"):
        load_plan(path3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour="red"), r"\(top level\): unknown key\(s\) 'colour'"),
        (lambda d: d.pop("goals"), r"missing key\(s\) 'goals'"),
        (lambda d: d["structures"][1].update(role="tumour"), r"structures\[1\].role: 'tumour'"),
        (lambda d: d["prescription"].update(dose_gy="110"), "prescription.dose_gy: expected a"),
        (lambda d: d["prescription"].update(dose_gy=11000.0), "outside the plausible range"),
        (lambda d: d["seeds"][0].update(needle_id="nd-9"), "missing needle 'nd-9'"),
        (lambda d: d["ct"]["geometry"].update(spacing_mm=[0.8, 0.9, -2.5]), "spacing_mm"),
        (lambda d: d["structures"][0].update(volume_cm3=99.0), "does not match its mask"),
        (lambda d: d["source"].update(implant_date="2027-12-01"), "check the dates"),
        (lambda d: d.update(revision=0), "revision: 0 is outside"),
        (lambda d: d["ct"].update(geometry_sha256="0" * 64), "geometry checksum"),
    ],
)
def test_strict_validation_names_the_key(tmp_path: Path, edit, message: str) -> None:
    members = _members(plan_file_bytes(full_plan()))
    doc = json.loads(members["plan.json"])
    edit(doc)
    members["plan.json"] = json.dumps(doc).encode()
    path = tmp_path / "bad.seedplan"
    path.write_bytes(_zip(_rehash(members)))
    with pytest.raises(InputError, match=message) as exc:
        load_plan(path)
    _one_line_naming(exc, path)


def test_newer_format_is_refused_clearly(tmp_path: Path) -> None:
    members = _members(plan_file_bytes(full_plan()))
    for version in ("3.0", f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1] + 1}"):
        path = tmp_path / f"v{version}.seedplan"
        path.write_bytes(_zip(_rehash(dict(members), format_version=version)))
        with pytest.raises(InputError, match=f"newer SeedPlan \\(plan format {version}") as exc:
            load_plan(path)
        _one_line_naming(exc, path)


def test_not_a_plan_file(tmp_path: Path) -> None:
    path = tmp_path / "x.seedplan"
    path.write_text("hello")
    with pytest.raises(InputError, match="not a zip archive"):
        load_plan(path)
    path.write_bytes(_zip({"foo.txt": b"x"}))
    with pytest.raises(InputError, match=re.escape("manifest.json is missing")):
        load_plan(path)


def _format_1_0_file(plan) -> bytes:
    """A plan file in format 1.0: whole-grid packed masks, no strength unit."""
    members = _members(plan_file_bytes(plan))
    doc = json.loads(members["plan.json"])
    for s, st in zip(doc["structures"], plan.structures, strict=True):
        s["mask"] = {"file": s["mask"]["file"], "voxel_count": st.voxel_count}
        members[s["mask"]["file"]] = np.packbits(st.mask.ravel()).tobytes()
    del doc["source"]["entered_as"]
    del doc["registration"]  # a 2.1 field
    del doc["verification"]  # a 2.3 field
    members["plan.json"] = json.dumps(doc).encode()
    return _zip(_rehash(members, format_version="1.0"))


def test_format_1_0_is_migrated_in_memory_and_the_file_is_not_touched(tmp_path: Path) -> None:
    plan = full_plan()
    path = tmp_path / "old.seedplan"
    data = _format_1_0_file(plan)
    path.write_bytes(data)
    loaded = load_plan(path)
    assert loaded.migrated and loaded.read_version == "1.0"
    assert loaded.plan.source.entered_as == "U"  # 1.0 knew only U
    expected = plan.evolve(
        source=plan.source.__class__(**{**plan.source.__dict__, "entered_as": "U"})
    )
    assert plans_equal(loaded.plan, expected)
    assert path.read_bytes() == data
    # Saving writes the current format.
    out = save_plan(loaded.plan, tmp_path / "new.seedplan")
    current = f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
    assert json.loads(_members(out.read_bytes())["manifest.json"])["format_version"] == current


def test_other_ct_grid_masks_are_refused(tmp_path: Path) -> None:
    members = _members(plan_file_bytes(full_plan(small_ct(shape=(20, 40, 36)))))
    doc = json.loads(members["plan.json"])
    doc["ct"]["geometry"]["shape_zyx"] = [10, 40, 36]
    members["plan.json"] = json.dumps(doc).encode()
    path = tmp_path / "grid.seedplan"
    path.write_bytes(_zip(_rehash(members)))
    with pytest.raises(InputError):
        load_plan(path)
