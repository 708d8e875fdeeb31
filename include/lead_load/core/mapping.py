"""Which warehouse column feeds which API field (docs/agent-api.md section 1).

The mapping is declarative YAML (``field_mapping.yaml`` beside this module by default), so a
``leads`` table shaped differently, or a new public-pool component, is a configuration change.
Every mistake is reported as a ``MappingError`` before any row is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("field_mapping.yaml")

# API fields a warehouse column may feed; `sort`, `extra` and `components` are filled by us.
API_FIELDS = ("phone", "name", "email", "company", "sex", "source_id", "industry_id", "grade_id")
TEXT_FIELDS = ("name", "email", "company")
INT_FIELDS = ("source_id", "industry_id", "grade_id")
SEX_CODES = (0, 1, 2)  # unknown, male, female
_KEYS = ("fields", "lead_id", "updated_at", "components", "sex_values")
# Columns the transform adds to the extract for its own work (lead_load.core.transform). A mapped
# source column of that name used to be overwritten silently (e.g. lead ids lost), so it is
# refused instead.
RESERVED_COLUMNS = ("phone_norm", "reject_reason")


class MappingError(ValueError):
    """The field mapping is malformed, or does not fit the extracted columns."""


@dataclass(frozen=True)
class FieldMapping:
    fields: dict[str, str]  # API field -> warehouse column
    lead_id: str = "lead_id"
    updated_at: str = "updated_at"
    components: dict[str, str] = field(default_factory=dict)  # component id -> column
    sex_values: dict[str, int] = field(default_factory=dict)  # lower-cased text -> 0/1/2

    def __post_init__(self) -> None:
        fields = _mapping_of("fields", self.fields)
        for api_field, column in fields.items():
            if api_field not in API_FIELDS:
                raise MappingError(
                    f"unknown API field name {api_field!r} in `fields` "
                    f"(known: {', '.join(API_FIELDS)})"
                )
            _column_name(f"the column of API field {api_field!r}", column)
        if "phone" not in fields:
            raise MappingError("`fields` must map `phone`: the API requires it on every row")
        _column_name("`lead_id`", self.lead_id)
        _column_name("`updated_at`", self.updated_at)
        components = _mapping_of("components", self.components)
        for component_id, column in components.items():
            if not isinstance(component_id, str) or not component_id.strip():
                raise MappingError(
                    f"component id {component_id!r} must be a string (quote it in YAML)"
                )
            _column_name(f"the column of component {component_id!r}", column)
        # Frozen: the normalised copies are set once, here.
        object.__setattr__(self, "fields", dict(fields))
        object.__setattr__(self, "components", dict(components))
        object.__setattr__(self, "sex_values", _sex_values(self.sex_values))

    @classmethod
    def load(cls, path: str | Path | None = None) -> FieldMapping:
        """Read and check a YAML mapping; the one beside this module by default."""
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"cannot read the field mapping {path}: {exc}") from exc
        try:
            return cls.from_dict(data)
        except MappingError as exc:
            raise MappingError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, data) -> FieldMapping:
        if not isinstance(data, Mapping):
            raise MappingError("the field mapping must be a YAML mapping with a `fields` key")
        unknown = [key for key in data if key not in _KEYS]
        if unknown:
            raise MappingError(
                f"unknown key(s) in the field mapping: {', '.join(map(str, unknown))} "
                f"(known: {', '.join(_KEYS)})"
            )
        # `fields:` left empty in YAML reads as None; it used to escape as a TypeError.
        if data.get("fields") is None:
            raise MappingError("the field mapping has no `fields` (API field: warehouse column)")
        # `components: ` or `sex_values: ` left empty in YAML read as None: same as {}.
        options = {key: data[key] for key in _KEYS if key in data and data[key] is not None}
        return cls(**options)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Every warehouse column the load needs, each once, in a stable order."""
        columns = [self.lead_id, self.updated_at]
        columns += [self.fields[name] for name in API_FIELDS if name in self.fields]
        columns += self.components.values()
        return tuple(dict.fromkeys(columns))

    def check_columns(self, available_columns: Iterable) -> None:
        available = set(available_columns)
        missing = [column for column in self.source_columns if column not in available]
        if missing:
            raise MappingError(f"source column(s) missing from the extract: {', '.join(missing)}")


def _mapping_of(name: str, value) -> Mapping:
    if not isinstance(value, Mapping):
        raise MappingError(f"`{name}` must be a mapping, got {value!r}")
    return value


def _column_name(what: str, column) -> None:
    if not isinstance(column, str) or not column.strip():
        raise MappingError(f"{what} must be a non-empty string naming a column, got {column!r}")
    if column in RESERVED_COLUMNS:
        raise MappingError(
            f"{what} is {column!r}, a name the transform uses for its own work: rename the "
            f"column in the extract query (include/sql/extract_leads.sql, e.g. "
            f"SELECT {column} AS source_{column}) and map that name"
        )


def _sex_values(values) -> dict[str, int]:
    """Lower-cased text keys; YAML gives 1: 1 an int key, which is fine, but yes/no are bools."""
    normalised: dict[str, int] = {}
    for raw, code in _mapping_of("sex_values", values).items():
        if isinstance(raw, bool) or raw is None:
            raise MappingError(
                f"sex value {raw!r} must be quoted in YAML (yes/no/on/off/null are not text)"
            )
        if type(code) is not int or code not in SEX_CODES:
            raise MappingError(
                f"bad sex code {code!r} for {raw!r}: must be 0 (unknown), 1 (male) or 2 (female)"
            )
        key = str(raw).strip().lower()
        if normalised.get(key, code) != code:
            raise MappingError(f"sex value {raw!r} is mapped to two different codes")
        normalised[key] = code
    return normalised
