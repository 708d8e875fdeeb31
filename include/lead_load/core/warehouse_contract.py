"""What the warehouse's extract must look like before a single row is read.

The extract query (include/sql/extract_leads.sql, user-editable) must return every column
the field mapping reads, each once and under its exact name, and ``updated_at`` must be a
date-time the window can be compared with. ``check_contract`` judges that from the columns
the query returns, each with a ``TypeCategory`` (the database's type, told by the caller in
plain words), and says per problem which column and what to change.

- A column missing from the extract, or present only in another case (``Phone`` for
  ``phone``: PostgreSQL keeps quoted names as they are) is a problem; so is one returned
  twice (``SELECT *, phone``), which makes the rows ambiguous.
- ``updated_at`` a timestamp (with or without zone) or a date: fine. Text: allowed with a
  warning, as it is compared as text and only the documented format selects exactly.
  A number or any other type: a problem. Unknown (the driver does not say, e.g. SQLite,
  which keeps date-times as text in any column): not judged here.
- Repeated lead ids are no problem of the contract: each repeat is rejected per row
  (``duplicate_lead_id``) and the latest row stands for the lead.

No I/O: ``lead_load.steps.extract`` looks at the warehouse and calls this.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from lead_load.core.mapping import FieldMapping

EXTRACT_SQL = "include/sql/extract_leads.sql"
MAPPING_YAML = "include/lead_load/core/field_mapping.yaml"


@dataclass(frozen=True)
class Sources:
    """Where the load's extract query and field mapping are, for the messages to name what
    to change (the default load's files unless its configuration says otherwise)."""

    extract_sql: str = EXTRACT_SQL
    mapping: str = MAPPING_YAML


DEFAULT_SOURCES = Sources()
# How many of the extract's columns a message lists before it says "and N more".
_LISTED_COLUMNS = 30


class TypeCategory(StrEnum):
    """A column's database type, in the words the contract's rules need."""

    TIMESTAMP = "timestamp"  # timestamp, timestamptz, datetime
    DATE = "date"
    TEXT = "text"  # text, varchar, char
    NUMBER = "number"  # integers, floats, decimals
    OTHER = "other"  # boolean, json, time, interval, binary, ...
    UNKNOWN = "unknown"  # the driver does not say


@dataclass(frozen=True)
class ExtractColumn:
    """One column of the extract: its name, its type's category and, for messages, the
    database's own name of the type (e.g. ``int8``)."""

    name: str
    category: TypeCategory = TypeCategory.UNKNOWN
    type_name: str | None = None

    def described(self) -> str:
        if self.type_name and self.type_name != self.category.value:
            return f"{self.category.value} ({self.type_name})"
        return self.category.value


@dataclass(frozen=True)
class ContractVerdict:
    """``problems`` fail the run (each names the column and the fix); ``warnings`` are
    logged; ``updated_at`` is how the window compares (None when the column is missing)."""

    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    updated_at: TypeCategory | None = None
    checked: tuple[str, ...] = ()  # the required columns, for the log
    missing: tuple[str, ...] = ()  # the required columns not in the extract (exact names)

    @property
    def compares_as_text(self) -> bool:
        """The window's bounds must be bound as text: ``updated_at`` is a text column."""
        return self.updated_at is TypeCategory.TEXT

    def explained(self) -> str:
        """The problems as one message: the missing columns first, in one line."""
        problems = list(self.problems)
        if self.missing:
            problems.insert(
                0, f"source column(s) missing from the extract: {', '.join(self.missing)}"
            )
        return "; ".join(problems)


def check_contract(
    mapping: FieldMapping, columns: Iterable[ExtractColumn], sources: Sources = DEFAULT_SOURCES
) -> ContractVerdict:
    """Judge the extract's columns against the mapping (see the module's docstring); the
    messages name ``sources``."""
    columns = list(columns)
    names = [column.name for column in columns]
    times = Counter(names)
    by_name = {column.name: column for column in columns}
    problems: list[str] = []
    for name, role in _roles(mapping, sources).items():
        if times[name] > 1:
            problems.append(
                f"column {name!r} ({role}) is returned {times[name]} times by the extract: "
                f"select it once in {sources.extract_sql} (e.g. not SELECT *, {name})"
            )
        elif not times[name]:
            problems.append(_missing(name, role, names, sources))
    warnings: list[str] = []
    updated_at = by_name.get(mapping.updated_at) if times[mapping.updated_at] == 1 else None
    if updated_at is not None:
        problem, warning = _updated_at_rule(updated_at, sources)
        problems += [problem] if problem else []
        warnings += [warning] if warning else []
    return ContractVerdict(
        problems=tuple(problems),
        warnings=tuple(warnings),
        updated_at=updated_at.category if updated_at is not None else None,
        checked=tuple(_roles(mapping, sources)),
        missing=tuple(name for name in _roles(mapping, sources) if not times[name]),
    )


def _roles(mapping: FieldMapping, sources: Sources) -> dict[str, str]:
    """Each required column, and where the mapping names it (for the messages)."""
    roles: dict[str, list[str]] = {}
    roles.setdefault(mapping.lead_id, []).append("`lead_id`")
    roles.setdefault(mapping.updated_at, []).append("`updated_at`")
    for api_field, column in mapping.fields.items():
        roles.setdefault(column, []).append(f"`fields.{api_field}`")
    for component_id, column in mapping.components.items():
        roles.setdefault(column, []).append(f"`components.{component_id}`")
    named = "field_mapping.yaml" if sources.mapping == MAPPING_YAML else sources.mapping
    return {column: f"{' and '.join(where)} in {named}" for column, where in roles.items()}


def _missing(name: str, role: str, names: list[str], sources: Sources) -> str:
    other_case = [found for found in dict.fromkeys(names) if found.casefold() == name.casefold()]
    if other_case:
        spelled = " and ".join(repr(found) for found in other_case)
        return (
            f"column {name!r} ({role}) is missing from the extract, which has {spelled}: the "
            f"same name in another case, which is a different column to the load. Map "
            f"{other_case[0]!r} in {sources.mapping}, or select it under the mapped name in "
            f'{sources.extract_sql} (e.g. SELECT "{other_case[0]}" AS {name})'
        )
    return (
        f"column {name!r} ({role}) is missing from the extract (it has: {_listed(names)}): "
        f"add it to the leads table or select it in {sources.extract_sql}, or map another "
        f"column in {sources.mapping}"
    )


def _listed(names: list[str]) -> str:
    if not names:
        return "no columns"
    shown = ", ".join(names[:_LISTED_COLUMNS])
    more = len(names) - _LISTED_COLUMNS
    return f"{shown}, and {more} more" if more > 0 else shown


def _updated_at_rule(column: ExtractColumn, sources: Sources) -> tuple[str | None, str | None]:
    """(problem, warning) for the updated_at column's type."""
    category = column.category
    if category in (TypeCategory.TIMESTAMP, TypeCategory.DATE, TypeCategory.UNKNOWN):
        return None, None
    if category is TypeCategory.TEXT:
        return None, (
            f"column {column.name!r} is {column.described()}, not a timestamp: the window is "
            "compared as text, so only rows written as YYYY-MM-DD HH:MM:SS in UTC select "
            "exactly; another format (a T, an offset, a time zone, a day first) falls into "
            "the wrong window or none, unnoticed. Make the column a timestamp (or timestamptz) "
            "in the warehouse to be safe"
        )
    return (
        f"column {column.name!r} is {column.described()}, not a timestamp or a date: the "
        "window cannot be compared with it. Store the time of the row's last change in UTC "
        "as a timestamp (or timestamptz), or select and compare a converted one in "
        f"{sources.extract_sql} (e.g. to_timestamp(updated_at) for Unix seconds on PostgreSQL)"
    ), None
