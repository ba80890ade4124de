"""Seed library: every model loads and validates; bad tables are refused naming file and field."""

from __future__ import annotations

import hashlib
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
    assert len(m.checksum) == 64 and set(m.table_checksums) == {
        "constants",
        "g_L",
        "F",
        "phi_an",
        "capsule",
    }
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


# Golden sha256 of every seed table, as dose.sources computes them (canonical JSON of the numeric
# tables: constants Λ / L / T½, g_L, F, φ_an, capsule; the overall one also covers the model id).
# The capsule (outer radius, length) joined the checksum deliberately: the engines cap and flag
# dose inside it and the seed's length is drawn and printed, so it is source data too. Pinned
# here on purpose: any change of a number in resources/seeds/*.json, or of the canonical form,
# fails loudly, and every dose label (``tables sha256 …``) changes with it. A deliberate table
# change must update these values in the same commit, with the table's provenance.
GOLDEN_CHECKSUMS = {
    "2301": "9905f3e809e8704726614b73f16c9f34171c3fc341ea5c97f7b4b63f79946c19",
    "6702": "f7d251156a444cf92432c46375f2ae77aa8b401829c4a351c2df706248b7052e",
    "6711": "a28126833ee66c0d6f96214e915b856efd045bd9e99f4871389809cf05905a9e",
    "AgX100": "d32871391feb772b0fa33ed4ab6292b78e6d96a8c83eb47353149b5bffadb653",
    "IAI-125A": "c30cda1577a3bd62f510ba5f134dc77bd2aa17d4c53f0501b69187d4af32b442",
    "STM1251": "f72ff46cfc0ff27c09d7d1b7a582b89234fe4863a6a6440c10c65416a3d86cfe",
}
GOLDEN_TABLE_CHECKSUMS = {
    "2301": {
        "constants": "691b9484cc9a1d082d5db4ab5a3ee2cdf82263d595052d4ade64799e51100f1f",
        "g_L": "120c578cd327e5014c0f3f5217b5539812c7d6976c56c5f5607a8bcabd3fd154",
        "F": "0463896a50a6141eebc8c3b9cce18a9f74cdd263115c3095d58788adf9f1adf4",
        "phi_an": "0caf135f38b45cac448ba23ecfd3ed3d8c7817aaf4e60fe0bf9c951d49daa292",
        "capsule": "5db47de01ccc4684b03ec6937d8be220992a2739a42317aba9117003953a6991",
    },
    "6702": {
        "constants": "0cac885bea8df2952862d96c31a7c1888a4dec34b3791808b0aabdc0ff1b5469",
        "g_L": "d2b9010c42f67c2203de6521f335f68f2cfa4198c51d2b627bc9ce01d699143a",
        "F": "6b18fb38faab303743d57f79264a8ab63cddd3869fc286af58e8bb00885a5686",
        "phi_an": "239fbd337435e2f92079147628d5461481c1ccf736c4f05faac4585d2795b8a5",
        "capsule": "bd0d89323a0ab7f2dcc3133fc2e906119d1bac202bfc98e4a0ba761f903d26f4",
    },
    "6711": {
        "constants": "ce83e1d07e42460c520245cb4d538c87669f6c37365878cf0fa3e48e57d2bf72",
        "g_L": "c9a7ea0cc913d435a5a8265fcae816d7778212e9bf193510a903541cb587ebfc",
        "F": "18f14c8917a0246ed6b8b22cd47795dc290291caf55bcf703088c0db9b0253b9",
        "phi_an": "0ee38f64e90320f97614a6c0461dbbb7fe9b25995744fcbd5f1414880670238f",
        "capsule": "62ca087ed275711d11a38738f5b48f8c27f341e7f96c26fae775d30ed7756609",
    },
    "AgX100": {
        "constants": "9359451f107dad7a67dfddb640693effaeb376d63d68827b6e07682c9c8718da",
        "g_L": "e548b8da26eaefb107e8669fec54018acfb2f742fd53c05b9ad367687b6574e4",
        "F": "7a4814430b5325ab64b23b16e2589f0cb634d7bceaa9a7cae4debae5f74c9cf0",
        "phi_an": "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
        "capsule": "bd0d89323a0ab7f2dcc3133fc2e906119d1bac202bfc98e4a0ba761f903d26f4",
    },
    "IAI-125A": {
        "constants": "3968c07c6b229bffd2bd6b901824f3b11923f4ff3d51b5b2d833dd5990130a8b",
        "g_L": "8345919e1dfbd6037397f569cf86f125bfc89aa17ba119d04fd898eb95f6165d",
        "F": "99208d48406fd2cf6bd54caca502628d0aa8370972df03ff2e933455466980d2",
        "phi_an": "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
        "capsule": "bd0d89323a0ab7f2dcc3133fc2e906119d1bac202bfc98e4a0ba761f903d26f4",
    },
    "STM1251": {
        "constants": "33c60dccfcadaf139157ab8e189759ed56b631cfb063fef6400d88b44e93cd82",
        "g_L": "e218e53afe1bd2900fdbaa331c89c5f5a6bb5dc17e50747151d92662f8bd0929",
        "F": "d303f806f9ade5f4f1ad7d0102e1c4a85a17ae0a7e4b55ac6350421428c55034",
        "phi_an": "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
        "capsule": "bd0d89323a0ab7f2dcc3133fc2e906119d1bac202bfc98e4a0ba761f903d26f4",
    },
}
# sha256 of the canonical JSON of null: the φ_an checksum of a model without φ_an
NULL_SHA256 = "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"


def test_golden_checksums_cover_exactly_the_seed_library() -> None:
    assert set(GOLDEN_CHECKSUMS) == set(known_models()) == set(MODELS)


@pytest.mark.parametrize("name", sorted(GOLDEN_CHECKSUMS))
def test_table_checksums_equal_golden_values(name: str) -> None:
    m = load_model(name)
    assert m.table_checksums == GOLDEN_TABLE_CHECKSUMS[name]
    assert m.checksum == GOLDEN_CHECKSUMS[name]
    assert (m.table_checksums["phi_an"] == NULL_SHA256) == (not m.has_phi_an)


def _canonical(obj: object) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("name", sorted(GOLDEN_CHECKSUMS))
def test_golden_checksums_recomputed_from_the_raw_json(name: str) -> None:
    # an independent recomputation from the file (not through dose.sources): the golden values
    # are the canonical JSON (sorted keys, no spaces, numbers as floats) of the published tables
    doc = json.loads((SEEDS_DIR / f"{name}.json").read_text(encoding="utf-8"))

    def floats(values: list) -> list:
        return [floats(v) if isinstance(v, list) else float(v) for v in values]

    g, f, phi = doc["radial_dose_function"], doc["anisotropy_function"], doc["anisotropy_factor"]
    tables = {
        "constants": {
            "lambda": float(doc["dose_rate_constant_cGy_per_h_per_U"]),
            "L_cm": float(doc["active_length_cm"]),
            "half_life_days": float(doc["half_life_days"]),
        },
        "g_L": {"r_cm": floats(g["r_cm"]), "g_L": floats(g["g_L"])},
        "F": {"r_cm": floats(f["r_cm"]), "theta_deg": floats(f["theta_deg"]), "F": floats(f["F"])},
        "phi_an": None
        if phi is None
        else {"r_cm": floats(phi["r_cm"]), "phi_an": floats(phi["phi_an"])},
        "capsule": {
            "outer_radius_cm": float(doc["capsule"]["outer_radius_cm"]),
            "length_cm": float(doc["capsule"]["length_cm"]),
        },
    }
    assert {k: _canonical(v) for k, v in tables.items()} == GOLDEN_TABLE_CHECKSUMS[name]
    assert _canonical({"model_id": name, **tables}) == GOLDEN_CHECKSUMS[name]


def test_a_changed_table_value_changes_its_checksum() -> None:
    # the checksum really sees the numbers: the last digit of one F entry
    from dose.sources import parse_model

    doc = json.loads((SEEDS_DIR / "6711.json").read_text(encoding="utf-8"))
    doc["anisotropy_function"]["F"][3][2] += 0.001
    m = parse_model(doc, "x.json")
    assert m.table_checksums["F"] != GOLDEN_TABLE_CHECKSUMS["6711"]["F"]
    assert m.checksum != GOLDEN_CHECKSUMS["6711"]
    assert m.table_checksums["g_L"] == GOLDEN_TABLE_CHECKSUMS["6711"]["g_L"]


def test_a_changed_capsule_changes_the_checksum_but_a_name_does_not() -> None:
    # the capsule changes the dose (capped and flagged inside it) and the drawn seed length
    from dose.sources import parse_model

    doc = json.loads((SEEDS_DIR / "6711.json").read_text(encoding="utf-8"))
    doc["capsule"]["length_cm"] += 0.01
    m = parse_model(doc, "x.json")
    assert m.table_checksums["capsule"] != GOLDEN_TABLE_CHECKSUMS["6711"]["capsule"]
    assert m.checksum != GOLDEN_CHECKSUMS["6711"]
    doc = json.loads((SEEDS_DIR / "6711.json").read_text(encoding="utf-8"))
    doc["capsule"]["outer_radius_cm"] *= 1.1
    assert parse_model(doc, "x.json").checksum != GOLDEN_CHECKSUMS["6711"]
    doc = json.loads((SEEDS_DIR / "6711.json").read_text(encoding="utf-8"))
    doc["manufacturer"] = "Someone else"
    assert parse_model(doc, "x.json").checksum == GOLDEN_CHECKSUMS["6711"]
