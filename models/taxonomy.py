"""The label taxonomy: canonical labels and zones, loaded from a versioned data file.

The normaliser is idempotent: normalising a canonical id, a raw code, an English or Spanish
display name (singular or plural), an alias or a coarse label gives a canonical entry, and
normalising that entry's id gives the same entry again. Anything else maps to ``unknown`` and is
counted by a :class:`Coverage` when one is passed, so unmapped labels are reported, never hidden.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from models.errors import VisragError

DEFAULT_TAXONOMY = "vehicle_damage"


class TaxonomyError(VisragError):
    """The taxonomy file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Label:
    id: str
    en: str
    es: str
    en_plural: str
    es_plural: str
    category: str
    coarse: str
    raw: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # (singular, plural) after a number: "1 pieza faltante", "2 piezas faltantes"
    en_counted: tuple[str, str] = ("", "")
    es_counted: tuple[str, str] = ("", "")

    def name(self, language: str = "en", *, plural: bool = False) -> str:
        if language == "es":
            return self.es_plural if plural else self.es
        return self.en_plural if plural else self.en

    def counted(self, n: int, language: str = "en") -> str:
        """The label after its count: '1 dent', '2 zonas con pintura levantada'."""
        one, other = self.es_counted if language == "es" else self.en_counted
        return f"{n} {one if n == 1 else other}"


@dataclass(frozen=True)
class Zone:
    id: str
    en: str
    es: str
    area: str
    raw: tuple[str, ...] = ()
    es_at: str = ""  # the place phrase, article included: "en el centro del capó"

    def name(self, language: str = "en") -> str:
        return self.es if language == "es" else self.en

    def at(self, language: str = "en") -> str:
        """Where on the vehicle, as a phrase: 'on the hood center', 'en el centro del capó'."""
        if language == "es":
            return self.es_at or f"en {self.es}"
        return f"on the {self.en}"


@dataclass
class Coverage:
    """Counts what the normaliser saw: mapped raw labels and the raw labels it could not map."""

    mapped: Counter[str] = field(default_factory=Counter)
    unmapped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.mapped.values()) + sum(self.unmapped.values())
        return {
            "total": total,
            "mapped": sum(self.mapped.values()),
            "unmapped": sum(self.unmapped.values()),
            "coverage": (sum(self.mapped.values()) / total) if total else 1.0,
            "unmapped_labels": dict(sorted(self.unmapped.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def fold(text: str) -> str:
    """Case-, accent-, separator-insensitive key: 'Arañazo_Superficial' -> 'aranazo superficial'."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    no_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = "".join(" " if c in "-_/." or c.isspace() else c for c in no_accents.casefold())
    return " ".join(spaced.split())


def _singulars(key: str) -> list[str]:
    """Simple plural folding on the last word: 'dents' -> 'dent', 'scratches' -> 'scratch'."""
    out = []
    if key.endswith("es"):
        out.append(key[:-2])
    if key.endswith("s"):
        out.append(key[:-1])
    return out


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: str
    labels: tuple[Label, ...]
    zones: tuple[Zone, ...]
    areas: Mapping[str, Mapping[str, str]]
    unknown_id: str = "unknown"
    no_damage_id: str = "no_damage"
    _label_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    _zone_keys: Mapping[str, str] = field(default_factory=dict, repr=False)

    # -- lookup ---------------------------------------------------------------------------------
    @property
    def label_ids(self) -> tuple[str, ...]:
        """Canonical label ids in file order (the canonical order used for sorting)."""
        return tuple(lb.id for lb in self.labels)

    @property
    def damage_ids(self) -> tuple[str, ...]:
        """Label ids that describe a defect (everything but no_damage and unknown)."""
        return tuple(i for i in self.label_ids if i not in (self.unknown_id, self.no_damage_id))

    @property
    def zone_ids(self) -> tuple[str, ...]:
        return tuple(z.id for z in self.zones)

    def label(self, label_id: str) -> Label:
        for lb in self.labels:
            if lb.id == label_id:
                return lb
        raise KeyError(label_id)

    def zone(self, zone_id: str) -> Zone:
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)

    def order(self, label_id: str) -> int:
        """Position of a canonical label in the file (unknown ids sort last)."""
        ids = self.label_ids
        return ids.index(label_id) if label_id in ids else len(ids)

    def counted(self, label_id: str, n: int, language: str = "en") -> str:
        """``n`` of a label as a phrase ('2 dents', '1 pieza faltante'); 'no damage' uncounted."""
        label = self.normalise(label_id)
        if label.id == self.no_damage_id:
            return label.name(language)
        return label.counted(n, language)

    def area_name(self, area: str, language: str = "en") -> str:
        names = self.areas.get(area, {})
        return names.get(language) or names.get("en") or area

    # -- normalisation --------------------------------------------------------------------------
    def normalise(self, raw: object, coverage: Coverage | None = None) -> Label:
        """Map any spelling of a label to its canonical entry; unmapped -> ``unknown`` (counted)."""
        label_id = self._lookup(self._label_keys, raw)
        if coverage is not None:
            if label_id is None:
                coverage.unmapped[str(raw)] += 1
            else:
                coverage.mapped[str(raw)] += 1
        return self.label(label_id or self.unknown_id)

    def is_known(self, raw: object) -> bool:
        return self._lookup(self._label_keys, raw) is not None

    def normalise_zone(self, raw: object) -> Zone:
        """Map a zone number, id or name ('7', 'zona_7', 'Driver side door') to its entry."""
        if raw is None:
            return self.zone(self.unknown_id)
        key = fold(str(raw))
        for prefix in ("zona ", "zone "):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        zone_id = self._lookup(self._zone_keys, key)
        return self.zone(zone_id or self.unknown_id)

    def normalise_counts(
        self, labels: Mapping[str, int] | Iterable[str] | None, coverage: Coverage | None = None
    ) -> dict[str, int]:
        """Raw labels (list or {label: count}) -> {canonical id: count} in canonical order."""
        if labels is None:
            return {}
        items: Iterable[tuple[Any, int]]
        if isinstance(labels, Mapping):
            items = labels.items()
        else:
            items = ((lb, 1) for lb in labels)
        counts: Counter[str] = Counter()
        for raw, n in items:
            counts[self.normalise(raw, coverage).id] += int(n)
        return self.sort_counts(counts)

    def sort_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Stable order: by count descending, then canonical order."""
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], self.order(kv[0]), kv[0])))

    @staticmethod
    def _lookup(keys: Mapping[str, str], raw: object) -> str | None:
        if raw is None:
            return None
        key = fold(str(raw))
        if key in keys:
            return keys[key]
        for singular in _singulars(key):
            if singular in keys:
                return keys[singular]
        return None


def _build_keys(entries: list[tuple[str, list[str]]]) -> dict[str, str]:
    """First spelling wins, so precedence follows the order entries and spellings are given."""
    keys: dict[str, str] = {}
    for entry_id, spellings in entries:
        for spelling in spellings:
            keys.setdefault(fold(spelling), entry_id)
    return keys


def _counted(entry: Mapping[str, Any], language: str) -> tuple[str, str]:
    """A label's (singular, plural) after a number; by default its lower-cased name and plural."""
    forms = (entry.get("counted") or {}).get(language)
    if forms is None:
        name = str(entry.get(language, entry["en"]))
        plural = entry.get(f"{language}_plural", name)
        return name.lower(), str(plural).lower()
    if not isinstance(forms, list) or len(forms) != 2:
        raise TaxonomyError(
            f"label {entry.get('id')!r}: counted.{language} must be [singular, plural]"
        )
    return str(forms[0]), str(forms[1])


def parse_taxonomy(data: Mapping[str, Any]) -> Taxonomy:
    try:
        labels = tuple(
            Label(
                id=str(d["id"]),
                en=str(d["en"]),
                es=str(d.get("es", d["en"])),
                en_plural=str(d.get("en_plural", d["en"])),
                es_plural=str(d.get("es_plural", d.get("es", d["en"]))),
                category=str(d.get("category", "unknown")),
                coarse=str(d.get("coarse", d["en"])),
                raw=tuple(str(r) for r in d.get("raw", []) or []),
                aliases=tuple(str(a) for a in d.get("aliases", []) or []),
                en_counted=_counted(d, "en"),
                es_counted=_counted(d, "es"),
            )
            for d in data["labels"]
        )
        zones = tuple(
            Zone(
                id=str(z["id"]),
                en=str(z.get("en", z["id"])),
                es=str(z.get("es", z.get("en", z["id"]))),
                area=str(z.get("area", "unknown")),
                raw=tuple(str(r) for r in z.get("raw", []) or []),
                es_at=str(z.get("es_at", "")),
            )
            for z in data.get("zones", [])
        )
        unknown_id = str(data.get("unknown", "unknown"))
        no_damage_id = str(data.get("no_damage", "no_damage"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise TaxonomyError(f"taxonomy file is missing a field: {exc}") from exc
    ids = [lb.id for lb in labels]
    if len(set(ids)) != len(ids):
        raise TaxonomyError("taxonomy has duplicate label ids")
    if unknown_id not in ids:
        raise TaxonomyError(f"taxonomy must define the unknown label {unknown_id!r}")
    if unknown_id not in [z.id for z in zones]:
        zones = (*zones, Zone(unknown_id, "unknown zone", "zona desconocida", "unknown"))
    # Precedence: ids, raw codes, display names, aliases, then coarse labels (shared coarse labels
    # such as "Scratch" resolve to the first label carrying them).
    label_keys = _build_keys(
        [(lb.id, [lb.id]) for lb in labels]
        + [(lb.id, list(lb.raw)) for lb in labels]
        + [(lb.id, [lb.en, lb.es, lb.en_plural, lb.es_plural]) for lb in labels]
        + [(lb.id, [*lb.en_counted, *lb.es_counted]) for lb in labels]
        + [(lb.id, list(lb.aliases)) for lb in labels]
        + [(lb.id, [lb.coarse]) for lb in labels]
    )
    zone_keys = _build_keys(
        [(z.id, [z.id]) for z in zones]
        + [(z.id, list(z.raw)) for z in zones]
        + [(z.id, [z.en, z.es]) for z in zones]
    )
    areas = {
        str(k): {str(lk): str(lv) for lk, lv in v.items()} for k, v in data.get("areas", {}).items()
    }
    return Taxonomy(
        name=str(data.get("name", "custom")),
        version=str(data.get("version", "0")),
        labels=labels,
        zones=zones,
        areas=areas,
        unknown_id=unknown_id,
        no_damage_id=no_damage_id,
        _label_keys=label_keys,
        _zone_keys=zone_keys,
    )


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy file (YAML or JSON); ``None`` loads the packaged default."""
    try:
        if path is None or str(path) == DEFAULT_TAXONOMY:
            text = (
                resources.files("models")
                .joinpath(f"data/{DEFAULT_TAXONOMY}.yaml")
                .read_text("utf-8")
            )
        else:
            text = Path(path).read_text("utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"taxonomy {path} does not parse: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TaxonomyError(f"taxonomy {path} must be a mapping with 'labels' and 'zones'")
    return parse_taxonomy(data)
