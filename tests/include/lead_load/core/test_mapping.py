"""The YAML field mapping: loading, validation and the columns it needs."""

import dataclasses
import re

import pytest

from lead_load.core.mapping import DEFAULT_PATH, FieldMapping, MappingError


def mapping(**overrides) -> dict:
    data = {"fields": {"phone": "mobile"}, "lead_id": "id", "updated_at": "modified"}
    data.update(overrides)
    return data


def test_default_mapping_loads_from_the_yaml_beside_the_module():
    default = FieldMapping.load()
    assert DEFAULT_PATH.name == "field_mapping.yaml"
    assert default.fields == {
        name: name
        for name in (
            "phone",
            "name",
            "email",
            "company",
            "sex",
            "source_id",
            "industry_id",
            "grade_id",
        )
    }
    assert (default.lead_id, default.updated_at, default.components) == (
        "lead_id",
        "updated_at",
        {},
    )
    assert default.sex_values == {
        "男": 1,
        "male": 1,
        "m": 1,
        "1": 1,
        "女": 2,
        "female": 2,
        "f": 2,
        "2": 2,
        "未知": 0,
        "unknown": 0,
        "0": 0,
    }


def test_load_from_a_path(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "fields: {phone: mobile, name: full_name}\n"
        "lead_id: id\n"
        "updated_at: modified\n"
        "components: {'c87d8629': score}\n"
        "sex_values: {Male: 1, 1: 1, '女': 2}\n",
        encoding="utf-8",
    )
    loaded = FieldMapping.load(path)
    assert loaded.fields == {"phone": "mobile", "name": "full_name"}
    assert loaded.components == {"c87d8629": "score"}
    assert loaded.sex_values == {"male": 1, "1": 1, "女": 2}  # keys lower-cased text
    assert loaded.source_columns == ("id", "modified", "mobile", "full_name", "score")


def test_mapping_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FieldMapping.load().lead_id = "other"  # type: ignore[misc]


def test_empty_sections_mean_empty():
    loaded = FieldMapping.from_dict(mapping(components=None, sex_values=None))
    assert loaded.components == {}
    assert loaded.sex_values == {}


def test_source_columns_lists_each_column_once():
    loaded = FieldMapping.from_dict(
        mapping(fields={"phone": "mobile", "name": "mobile"}, components={"a": "id"})
    )
    assert loaded.source_columns == ("id", "modified", "mobile")


def test_check_columns_names_every_missing_column():
    loaded = FieldMapping.from_dict(mapping(fields={"phone": "mobile", "email": "mail"}))
    loaded.check_columns(["id", "modified", "mobile", "mail", "extra"])
    with pytest.raises(MappingError) as error:
        loaded.check_columns(["id", "mobile"])
    assert str(error.value) == "source column(s) missing from the extract: modified, mail"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (mapping(fields={"phone": "p", "mobile": "m"}), "unknown API field name 'mobile'"),
        (mapping(fields={"phone": "p", "extra": "x"}), "unknown API field name 'extra'"),
        (mapping(fields={"phone": "p", "sort": "x"}), "unknown API field name 'sort'"),
        (mapping(fields={"name": "n"}), "`fields` must map `phone`"),
        (mapping(fields={"phone": ""}), "column of API field 'phone' must be a non-empty string"),
        (mapping(fields={"phone": 3}), "column of API field 'phone' must be a non-empty string"),
        (mapping(fields=["phone"]), "`fields` must be a mapping"),
        (mapping(lead_id=None), None),  # None: the default lead_id column
        (mapping(lead_id=""), "`lead_id` must be a non-empty string"),
        (mapping(updated_at=["x"]), "`updated_at` must be a non-empty string"),
        (mapping(components={123: "col"}), "component id 123 must be a string"),
        (mapping(components={"a": None}), "the column of component 'a' must be"),
        (mapping(components=["a"]), "`components` must be a mapping"),
        (mapping(sex_values={"male": 3}), "bad sex code 3 for 'male'"),
        (mapping(sex_values={"male": "1"}), "bad sex code '1' for 'male'"),
        (mapping(sex_values={"male": True}), "bad sex code True for 'male'"),
        (mapping(sex_values={True: 1}), "sex value True must be quoted in YAML"),
        (mapping(sex_values={"M": 1, "m": 2}), "sex value 'm' is mapped to two different codes"),
        (mapping(colour="blue"), "unknown key(s) in the field mapping: colour"),
        ({"lead_id": "id"}, "the field mapping has no `fields`"),
        (["phone"], "must be a YAML mapping"),
        (None, "must be a YAML mapping"),
    ],
    ids=repr,
)
def test_validation_errors_are_clear(data, message):
    if message is None:
        assert FieldMapping.from_dict(data).lead_id == "lead_id"
        return
    with pytest.raises(MappingError, match=re.escape(message)):
        FieldMapping.from_dict(data)


def test_direct_construction_is_validated_too():
    with pytest.raises(MappingError, match="`fields` must map `phone`"):
        FieldMapping(fields={"name": "n"})


def test_load_reports_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MappingError, match="cannot read the field mapping"):
        FieldMapping.load(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("fields: {phone: [", encoding="utf-8")
    with pytest.raises(MappingError, match="cannot read the field mapping"):
        FieldMapping.load(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("fields: {telephone: t}\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"wrong\.yaml: unknown API field name 'telephone'"):
        FieldMapping.load(wrong)


def test_yaml_booleans_as_sex_keys_are_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("fields: {phone: p}\nsex_values: {yes: 1}\n", encoding="utf-8")
    with pytest.raises(MappingError, match="must be quoted in YAML"):
        FieldMapping.load(path)
