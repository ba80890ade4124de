"""Seed library: every model loads and validates; bad tables are refused naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from dose.sources import SEEDS_DIR, known_models, load_model

MODELS = ["6711", "2301", "6702", "IAI-125A", "STM1251", "AgX100"]


def test_all_required_models_present() -> None:
    assert set(MODELS) <= set(known_models())


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_and_tables_are_consistent(name: str) -> None:
    m = load_model(name)
    assert m.model_id == name
    assert m.f_values.shape == (m.f_theta_deg.size, m.f_r_cm.size)
    assert np.all(np.diff(m.g_r_cm) > 0) and np.all(np.diff(m.f_r_cm) > 0)
    assert len(m.checksum) == 64 and set(m.table_checksums) == {"constants", "g_L", "F", "phi_an"}
    # provenance recorded for every table
    doc = json.loads((SEEDS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for key in ("radial_dose_function", "anisotropy_function"):
        assert doc[key]["provenance"]["sources"], key


def test_published_constants() -> None:
    # Λ and L from tg43.md §0 (matRad-LDR / TPOR seed classes)
    expected = {
        "6711": (0.965, 0.30),
        "2301": (1.018, 0.40),
        "6702": (1.036, 0.30),
        "IAI-125A": (0.981, 0.30),
        "STM1251": (1.018, 0.381),
        "AgX100": (0.943, 0.35),
    }
    for name, (lam, length) in expected.items():
        m = load_model(name)
        assert m.dose_rate_constant == lam and m.active_length_cm == length


def test_single_source_flags_and_agx100_full_table() -> None:
    # tg43.md §2.5: STM1251 and AgX100 come from TPOR only
    assert load_model("STM1251").single_source and load_model("AgX100").single_source
    assert not load_model("6711").single_source
    agx = load_model("AgX100")
    # TPOR core/src/TheragenicsAgX100Seed.cpp: 24 angles x 7 radii; F(0.25 cm, 0°) = 0.205,
    # F(7 cm, 85°) = 1.015
    assert agx.f_values.shape == (24, 7)
    assert agx.f_values[0, 0] == 0.205 and agx.f_values[22, 6] == 1.015
    # φ_an published only for 6711, 2301, 6702 (tg43.md §0)
    assert [load_model(n).has_phi_an for n in MODELS] == [True, True, True, False, False, False]


def test_checksums_differ_between_models_and_are_stable() -> None:
    sums = {load_model(n).checksum for n in MODELS}
    assert len(sums) == len(MODELS)
    a = load_model(SEEDS_DIR / "6711.json")
    doc = json.loads((SEEDS_DIR / "6711.json").read_text(encoding="utf-8"))
    from dose.sources import parse_model

    assert parse_model(doc, "x.json").checksum == a.checksum


def test_alias_lookup_and_unknown_model_lists_known() -> None:
    assert load_model("OncoSeed 6711").model_id == "6711"
    with pytest.raises(InputError) as exc:
        load_model("nonesuch")
    assert "6711" in str(exc.value) and "AgX100" in str(exc.value)


def _write_bad(tmp_path: Path, mutate) -> Path:
    doc = json.loads((SEEDS_DIR / "6711.json").read_text(encoding="utf-8"))
    mutate(doc)
    p = tmp_path / "bad_seed.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["radial_dose_function"]["r_cm"].__setitem__(3, 0.2),
            "radial_dose_function.r_cm",
        ),
        (lambda d: d["radial_dose_function"]["g_L"].__setitem__(5, 1.01), "g_L(1 cm)"),
        (lambda d: d["radial_dose_function"]["g_L"].pop(), "radial_dose_function"),
        (lambda d: d["anisotropy_function"]["F"][-1].__setitem__(2, 0.99), "F(r, 90°)"),
        (lambda d: d["anisotropy_function"]["F"][4].pop(), "anisotropy_function.F[4]"),
        (
            lambda d: d["anisotropy_function"]["r_cm"].__setitem__(1, 0.4),
            "anisotropy_function.r_cm",
        ),
        (lambda d: d["anisotropy_factor"]["phi_an"].pop(), "anisotropy_factor"),
        (lambda d: d.__setitem__("dose_rate_constant_cGy_per_h_per_U", "x"), "dose_rate_constant"),
        (lambda d: d["capsule"].__setitem__("length_cm", 0.1), "capsule.length_cm"),
    ],
)
def test_invalid_tables_are_refused(tmp_path: Path, mutate, field: str) -> None:
    p = _write_bad(tmp_path, mutate)
    with pytest.raises(InputError) as exc:
        load_model(p)
    msg = str(exc.value)
    assert "bad_seed.json" in msg and field in msg


def test_broken_json_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.json.*not valid JSON"):
        load_model(p)
