"""The rows a database driver returned, as a DataFrame (``rows_to_frame``): typed as
``pandas.read_sql`` types them, but with every whole number kept exact, since a lead id
rounded by a float is another lead.

Pure: ``lead_load.steps.extract`` reads the rows from the warehouse and hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd


def _beyond_float(value: Any) -> bool:
    """A whole number (int, Decimal) that a float64 would change."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return False
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral()):
        return False
    try:
        return float(value) != value
    except OverflowError:
        return True


def _exact_number(value: Any) -> Any:
    """What a float column holds, but a whole number as an int (exact); other Decimals as
    floats, as pandas would have."""
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral() else float(value)
    return value


def rows_to_frame(rows: Sequence[Sequence[Any]], columns: list[str]) -> pd.DataFrame:
    """A DataFrame of the rows, typed as pandas.read_sql types them (time-zone-aware times
    in UTC), except that a float column is kept as the values themselves (object) when one
    of them is a whole number a float64 cannot hold: pandas turns integers into floats when
    the column has a NULL (or is a NUMERIC), and lead id 9007199254740993 became
    9007199254740992, another lead."""
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    for position, dtype in enumerate(frame.dtypes.tolist()):
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame.isetitem(position, frame.iloc[:, position].dt.tz_convert("UTC"))
        elif pd.api.types.is_float_dtype(dtype):
            raw = [row[position] for row in rows]
            if any(map(_beyond_float, raw)):
                exact = np.empty(len(raw), dtype=object)
                exact[:] = [_exact_number(value) for value in raw]
                frame.isetitem(position, pd.Series(exact, index=frame.index, dtype=object))
    return frame
