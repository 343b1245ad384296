from __future__ import annotations

import json

import pytest

from models.taxonomy import Coverage, TaxonomyError, fold, load_taxonomy


def _spellings(label):
    return [
        label.id,
        label.en,
        label.es,
        label.en_plural,
        label.es_plural,
        *label.raw,
        *label.aliases,
    ]


def test_every_canonical_spelling_maps_to_its_own_entry(taxonomy):
    for label in taxonomy.labels:
        for spelling in _spellings(label):
            assert taxonomy.normalise(spelling) == label, spelling


def test_normaliser_is_idempotent_over_every_output(taxonomy):
    for label in taxonomy.labels:
        for spelling in [*_spellings(label), label.coarse]:
            once = taxonomy.normalise(spelling)
            assert taxonomy.normalise(once.id) == once
            assert taxonomy.normalise(once.en) == once
            assert taxonomy.normalise(once.es) == once


def test_coarse_label_maps_to_an_entry_with_that_coarse_label(taxonomy):
    # The reference project mapped its own output "Scratch" to "Unknown"; never again.
    for label in taxonomy.labels:
        entry = taxonomy.normalise(label.coarse)
        assert entry.coarse == label.coarse
        assert entry.id != taxonomy.unknown_id or label.id == taxonomy.unknown_id
    assert taxonomy.normalise("Scratch").id == "surface_scratch"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", "surface_scratch"),
        ("8", "misaligned_part"),
        ("SURFACE-SCRATCH", "surface_scratch"),
        ("  surface__scratch ", "surface_scratch"),
        ("aranazo superficial", "surface_scratch"),
        ("Arañazos superficiales", "surface_scratch"),
        ("Dents", "dent"),
        ("grietas", "crack"),
        ("Deviated part", "misaligned_part"),
        ("Degraded varnish", "paint_peeling"),
        ("peeled paint", "paint_peeling"),
    ],
)
def test_folds_case_accents_separators_plurals_and_aliases(taxonomy, raw, expected):
    assert taxonomy.normalise(raw).id == expected


def test_unmapped_labels_go_to_unknown_and_are_counted(taxonomy):
    coverage = Coverage()
    assert taxonomy.normalise("9", coverage).id == "unknown"
    assert taxonomy.normalise("rust", coverage).id == "unknown"
    assert taxonomy.normalise("rust", coverage).id == "unknown"
    assert taxonomy.normalise("2", coverage).id == "dent"
    report = coverage.as_dict()
    assert report["unmapped_labels"] == {"rust": 2, "9": 1}
    assert report["mapped"] == 1 and report["total"] == 4


def test_zones_from_numbers_names_and_file_name_fragments(taxonomy):
    assert taxonomy.normalise_zone("7").id == "driver_side_door"
    assert taxonomy.normalise_zone("zona_7").id == "driver_side_door"
    assert taxonomy.normalise_zone("Hood center").id == "hood_center"
    assert taxonomy.normalise_zone("centro del capó").id == "hood_center"
    assert taxonomy.normalise_zone("11").id == "unknown"
    assert taxonomy.normalise_zone(None).id == "unknown"
    assert len([z for z in taxonomy.zones if z.id != "unknown"]) == 10


def test_counts_are_normalised_and_stably_ordered(taxonomy):
    assert list(taxonomy.normalise_counts(["2", "1", "1", "Dent", "scratch"]).items()) == [
        ("surface_scratch", 3),
        ("dent", 2),
    ]
    assert taxonomy.normalise_counts({"grieta": 1, "dent": 1}) == {"dent": 1, "crack": 1}


def test_another_domain_is_another_file(tmp_path):
    path = tmp_path / "defects.json"
    path.write_text(
        json.dumps(
            {
                "name": "pcb",
                "version": "2",
                "labels": [
                    {"id": "short", "en": "Short circuit", "raw": ["S"], "aliases": ["bridge"]},
                    {"id": "unknown", "en": "Unknown"},
                ],
                "zones": [{"id": "top", "en": "top layer", "raw": ["1"]}],
            }
        )
    )
    tax = load_taxonomy(path)
    assert (tax.name, tax.version) == ("pcb", "2")
    assert tax.normalise("bridges").id == "short"
    assert tax.normalise("dent").id == "unknown"
    assert tax.normalise_zone("1").id == "top"


# What a reader sees after a number, per label: 1 and 2 of it, in English and Spanish. English is
# the index's description text (changing it changes the text vectors); Spanish is what the /context
# block says to a Spanish-speaking VLM ("1 x Falta pieza" and "1 falta pieza" were not Spanish).
COUNTED = {
    "surface_scratch": (
        ("1 surface scratch", "2 surface scratches"),
        ("1 arañazo superficial", "2 arañazos superficiales"),
    ),
    "dent": (("1 dent", "2 dents"), ("1 abolladura", "2 abolladuras")),
    "paint_peeling": (
        ("1 paint peeling", "2 paint peeling areas"),
        ("1 zona con pintura levantada", "2 zonas con pintura levantada"),
    ),
    "deep_scratch": (
        ("1 deep scratch", "2 deep scratches"),
        ("1 arañazo profundo", "2 arañazos profundos"),
    ),
    "crack": (("1 crack", "2 cracks"), ("1 grieta", "2 grietas")),
    "missing_part": (
        ("1 missing part", "2 missing parts"),
        ("1 pieza faltante", "2 piezas faltantes"),
    ),
    "missing_accessory": (
        ("1 missing accessory", "2 missing accessories"),
        ("1 accesorio faltante", "2 accesorios faltantes"),
    ),
    "misaligned_part": (
        ("1 misaligned part", "2 misaligned parts"),
        ("1 pieza desalineada", "2 piezas desalineadas"),
    ),
    "no_damage": (("No damage", "No damage"), ("Sin daño", "Sin daño")),
    "unknown": (
        ("1 unknown", "2 unknown defects"),
        ("1 defecto desconocido", "2 defectos desconocidos"),
    ),
}


@pytest.mark.parametrize("label_id", sorted(COUNTED))
@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("n", [1, 2])
def test_counted_forms_per_label(taxonomy, label_id, language, n):
    en, es = COUNTED[label_id]
    expected = (en if language == "en" else es)[n - 1]
    assert taxonomy.counted(label_id, n, language) == expected
    if label_id != taxonomy.no_damage_id:
        phrase = expected.split(" ", 1)[1]
        assert taxonomy.normalise(phrase).id == label_id  # the phrase reads back as its label


def test_every_label_has_counted_forms_checked(taxonomy):
    assert set(COUNTED) == set(taxonomy.label_ids)


def test_spanish_zone_phrases_carry_their_article(taxonomy):
    assert taxonomy.zone("hood_center").at("es") == "en el centro del capó"
    assert taxonomy.zone("driver_side_door").at("es") == "en la puerta del conductor"
    assert taxonomy.zone("rear_bumper").at("es") == "en el paragolpes trasero"
    assert taxonomy.zone("hood_center").at("en") == "on the hood center"
    for zone in taxonomy.zones:
        assert zone.at("es").split()[:2] in (["en", "el"], ["en", "la"], ["en", "una"]), zone.id


def test_a_file_without_counted_forms_keeps_its_names(tmp_path):
    path = tmp_path / "defects.yaml"
    path.write_text(
        "labels: [{id: short, en: Short circuit, en_plural: short circuits},\n"
        "         {id: unknown, en: U}]\n"
        "zones: [{id: top, en: top layer, es: capa superior}]\n"
    )
    tax = load_taxonomy(path)
    assert [tax.counted("short", n, "en") for n in (1, 3)] == [
        "1 short circuit",
        "3 short circuits",
    ]
    assert tax.zone("top").at("es") == "en capa superior"
    path.write_text("labels: [{id: unknown, en: U, counted: {es: [uno]}}]\n")
    with pytest.raises(TaxonomyError, match=r"counted\.es must be \[singular, plural\]"):
        load_taxonomy(path)


def test_broken_taxonomy_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("labels: [{en: no id}]")
    with pytest.raises(TaxonomyError, match="missing a field"):
        load_taxonomy(path)
    with pytest.raises(TaxonomyError, match="cannot read"):
        load_taxonomy(tmp_path / "absent.yaml")


def test_fold():
    assert fold("Pintura_Levantada-o  Descascarillada") == "pintura levantada o descascarillada"
