"""The rows a driver returned, as a DataFrame: pandas.read_sql's types, whole numbers exact."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd

from lead_load.core.row_frames import rows_to_frame


def test_a_whole_number_a_float_cannot_hold_stays_exact():
    # A NULL makes pandas read the column as floats: 9007199254740993 would be ...992.
    frame = rows_to_frame([(9007199254740993, "a"), (None, "b")], ["lead_id", "name"])
    assert frame["lead_id"].tolist() == [9007199254740993, None]
    assert frame["lead_id"].dtype == object
    # A NUMERIC column: whole Decimals as ints, the others as floats, as pandas would have.
    numeric = rows_to_frame([(Decimal("12345678901234567891"),), (Decimal("1.5"),)], ["n"])
    assert numeric["n"].tolist() == [12345678901234567891, 1.5]
    assert [type(v) for v in numeric["n"]] == [int, float]


def test_other_columns_are_typed_as_read_sql_types_them():
    frame = rows_to_frame([(1, 2.5, "x"), (None, None, None)], ["a", "b", "c"])
    assert frame["a"].dtype == "float64"  # small integers with a NULL: floats, as ever
    assert frame["b"].dtype == "float64"
    assert frame["c"].iloc[0] == "x" and pd.isna(frame["c"].iloc[1])
    empty = rows_to_frame([], ["lead_id", "phone"])
    assert list(empty.columns) == ["lead_id", "phone"] and empty.empty


def test_time_zone_aware_times_are_in_utc():
    shanghai = timezone(timedelta(hours=8))
    frame = rows_to_frame([(datetime(2026, 11, 24, 10, tzinfo=shanghai),)], ["updated_at"])
    assert isinstance(frame["updated_at"].dtype, pd.DatetimeTZDtype)
    assert frame["updated_at"].tolist() == [pd.Timestamp(datetime(2026, 11, 24, 2, tzinfo=UTC))]
    assert str(frame["updated_at"].dt.tz) == "UTC"
