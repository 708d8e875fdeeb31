"""The project's pandas transform against the same rules as one DuckDB SQL query.

What is measured: on N synthetic leads (default 1,000,000) with messy phones (spaces, dashes,
dots, parentheses, +86/0086/86 prefixes, full-width digits), 5% invalid phones and 10%
duplicate numbers, the time and peak memory of

- ``ours``: ``normalise_and_validate`` + ``dedupe_latest``, the honest equivalent of the SQL:
  normalise, validate (mainland mobile ``^1[3-9]\\d{9}$``), keep one row per phone (latest
  ``updated_at``, then the higher lead id);
- ``duckdb``: the same normalisation, validation and de-duplication as ONE SQL query over the
  same in-memory DataFrame (DuckDB scans pandas in place, with its default thread count);
- ``transform_leads``: for information, the whole transform the DAG runs, which also builds
  an API payload dict per kept row and the rejects table (no SQL counterpart).

The kept (lead_id, phone) rows of all three must be the same set; the script fails if not.

How: the leads are built once with vectorised numpy (``lead_load_devtools.synthetic.generate`` loops
in Python: too slow for a million rows), pickled, and each implementation runs in its own
subprocess, so that one's memory cannot hide in another's high-water mark. The worker loads
the data, warms the code up on 1,000 rows, resets its peak-RSS mark, then runs: memory is the
peak resident set (VmHWM) during the runs minus the resident set before them, i.e. what the
work needed on top of its input. RSS because DuckDB allocates outside Python's tracemalloc;
VmHWM rather than ``ru_maxrss``, which Linux makes inherit the parent's peak (see rss.py).
Time is the best of ``--repeat`` runs.

    .venv/bin/python benchmarks/transform_vs_duckdb.py [--rows 1000000] [--repeat 3]

The goal (phones.py docstring): ours within 2x of DuckDB, i.e. ``ratio`` <= 2.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rss

SEED = 7
INVALID_SHARE = 0.05
DUPLICATE_SHARE = 0.10
WINDOW_START = np.datetime64("2026-11-24T00:00:00", "us")
GOAL_RATIO = 2.0
WARM_UP_ROWS = 1000
IMPLEMENTATIONS = ("ours", "duckdb", "transform_leads")

# The whole job in one query. Separators are the ones the data set uses (RE2's \s is ASCII
# whitespace); translate() stands in for NFKC, which DuckDB lacks, on full-width digits.
DUCKDB_SQL = r"""
WITH cleaned AS (
    SELECT
        lead_id,
        updated_at,
        regexp_replace(
            translate(regexp_replace(phone, '[\s().-]+', '', 'g'),
                      '０１２３４５６７８９', '0123456789'),
            '^(?:\+86|0086|86)(1[0-9]{10})$', '\1') AS phone
    FROM leads
)
SELECT lead_id, phone
FROM cleaned
WHERE regexp_full_match(phone, '1[3-9][0-9]{9}')
QUALIFY row_number() OVER (PARTITION BY phone ORDER BY updated_at DESC, lead_id DESC) = 1
"""

# --- synthetic leads, vectorised ---------------------------------------------------------------


def _texts(codepoints: np.ndarray) -> np.ndarray:
    """Python strings from a (rows, width) array of Unicode code points (0 pads the end)."""
    matrix = np.ascontiguousarray(codepoints, dtype=np.uint32)
    return matrix.view(f"<U{matrix.shape[1]}").ravel().astype(object)


def _join(*parts) -> np.ndarray:
    """Row-wise concatenation of code point blocks and constant strings, as Python strings."""
    rows = next(len(part) for part in parts if not isinstance(part, str))
    blocks = [
        np.broadcast_to(np.array([ord(c) for c in part], np.uint32), (rows, len(part)))
        if isinstance(part, str)
        else part
        for part in parts
    ]
    return _texts(np.hstack(blocks))


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) ASCII code points of zero-padded decimal numbers."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (numbers[:, None] // powers % 10 + ord("0")).astype(np.uint32)


FULL_WIDTH_SHIFT = ord("０") - ord("0")
# Valid but untidy spellings of an 11-digit mobile, given its digit code points `d`.
SPELLINGS = (
    lambda d: _join(d),
    lambda d: _join(d[:, :3], " ", d[:, 3:7], " ", d[:, 7:]),
    lambda d: _join("+86 ", d[:, :3], "-", d[:, 3:7], "-", d[:, 7:]),
    lambda d: _join("0086", d),
    lambda d: _join("86", d),
    lambda d: _join(d + FULL_WIDTH_SHIFT),
    lambda d: _join(" (", d[:, :3], ") ", d[:, 3:], " "),
    lambda d: _join(d[:, :3], ".", d[:, 3:7], ".", d[:, 7:]),
)
# Never a mainland mobile: missing, blank, 10 digits, a fixed line, 12..., text.
INVALID_SPELLINGS = (
    lambda d: np.full(len(d), None, dtype=object),
    lambda d: np.full(len(d), "  ", dtype=object),
    lambda d: _join(d[:, :10]),
    lambda d: _join("021-", d[:, 3:]),
    lambda d: _join("12", d[:, 2:]),
    lambda d: np.full(len(d), "call me maybe", dtype=object),
)
SEXES = np.array(["男", "女", "male", "F", "", None, "unknown"], dtype=object)
COMPANIES = np.array([f"公司{k}" for k in range(97)], dtype=object)


def build_leads(
    rows: int, seed: int = SEED, *, start: np.datetime64 = WINDOW_START, id_prefix: str = "L"
) -> pd.DataFrame:
    """The warehouse's ``leads`` columns, typed as ``pd.read_sql`` returns them.

    ``updated_at`` falls in [start - 1 h, start + 1 day): duplicates are up to 1 h older.
    """
    rng = np.random.default_rng(seed)
    index = np.arange(rows, dtype=np.int64)
    roll = rng.random(rows)
    invalid = roll < INVALID_SHARE
    duplicate = ~invalid & (roll < INVALID_SHARE + DUPLICATE_SHARE)
    original = ~invalid & ~duplicate

    # Random numbers may collide (about n^2 / 1.4e10 pairs): a few extra duplicates, harmless.
    canonical = 10**10 + rng.integers(3, 10, rows) * 10**9 + rng.integers(0, 10**9, rows)
    seconds = rng.integers(0, 86_400, rows)
    # A duplicate repeats an original's number, updated 1 s to 1 h earlier, or (1 in 100) in
    # the same second, so the tie-break on the lead id is exercised too.
    picked = np.flatnonzero(original)[rng.integers(0, original.sum(), duplicate.sum())]
    canonical[duplicate] = canonical[picked]
    earlier = rng.integers(1, 3600, len(picked))
    earlier[rng.random(len(picked)) < 0.01] = 0
    seconds[duplicate] = seconds[picked] - earlier

    digits = _digits(canonical, 11)
    phones = np.empty(rows, dtype=object)
    spelling = rng.integers(0, len(SPELLINGS), rows)
    for number, spell in enumerate(SPELLINGS):
        chosen = np.flatnonzero(~invalid & (spelling == number))
        phones[chosen] = spell(digits[chosen])
    broken = rng.integers(0, len(INVALID_SPELLINGS), rows)
    for number, spell in enumerate(INVALID_SPELLINGS):
        chosen = np.flatnonzero(invalid & (broken == number))
        phones[chosen] = spell(digits[chosen])

    ids = _digits(index, 8)
    emails = _join("lead", ids, "@example.com")
    emails[rng.random(rows) >= 0.7] = None
    # Nullable integer columns come back from read_sql as float64 with NaN.
    return pd.DataFrame(
        {
            "lead_id": _join(id_prefix, ids),
            "name": _join("联系人", ids),
            "phone": phones,
            "email": emails,
            "company": COMPANIES[index % len(COMPANIES)],
            "sex": SEXES[rng.integers(0, len(SEXES), rows)],
            "source_id": np.array([1, 2, 3, np.nan])[rng.integers(0, 4, rows)],
            "industry_id": np.array([1, 5, np.nan])[rng.integers(0, 3, rows)],
            "grade_id": np.array([1, 2, np.nan])[rng.integers(0, 3, rows)],
            "updated_at": start + seconds.astype("timedelta64[s]"),
        }
    )


# --- the implementations (each runs in a worker subprocess) -----------------------------------


def make_runner(name: str):
    """A function DataFrame -> kept (lead_id, phone) DataFrame, with its imports done."""
    if name == "duckdb":
        import duckdb

        connection = duckdb.connect()

        def run_duckdb(leads: pd.DataFrame) -> pd.DataFrame:
            connection.register("leads", leads)  # a view over the DataFrame, no copy
            try:
                return connection.execute(DUCKDB_SQL).df()
            finally:
                connection.unregister("leads")

        return run_duckdb

    from lead_load.core.mapping import FieldMapping
    from lead_load.core.transform import dedupe_latest, normalise_and_validate, transform_leads

    mapping = FieldMapping.load()
    if name == "transform_leads":
        return lambda leads: transform_leads(leads, mapping).valid[["lead_id", "phone"]]

    def run_ours(leads: pd.DataFrame) -> pd.DataFrame:
        checked = normalise_and_validate(leads, mapping)
        kept, _ = dedupe_latest(checked, lead_id=mapping.lead_id, updated_at=mapping.updated_at)
        return pd.DataFrame({"lead_id": kept["lead_id"].array, "phone": kept["phone_norm"].array})

    return run_ours


def worker(name: str, data: Path, out: Path, repeat: int) -> None:
    with data.open("rb") as file:
        leads = pickle.load(file)  # noqa: S301 - our own file, written by the parent
    run = make_runner(name)
    run(leads.head(WARM_UP_ROWS))  # lazy imports and first-call set-up are not the work
    peak_was_reset = rss.reset_peak()
    baseline = rss.current_mib()
    seconds, kept = [], None
    for _ in range(repeat):
        kept = None  # free the previous result first, so that runs do not stack up
        started = time.perf_counter()
        kept = run(leads)
        seconds.append(time.perf_counter() - started)
    peak = rss.peak_mib()
    with out.open("wb") as file:
        pickle.dump(kept, file)
    result = {"seconds": seconds, "baseline_mib": baseline, "peak_mib": peak}
    print(json.dumps({**result, "peak_was_reset": peak_was_reset}))


def run_worker(name: str, data: Path, out: Path, repeat: int) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--data", str(data), "--out", str(out)]
    command += ["--repeat", str(repeat)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} worker failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def kept_pairs(path: Path) -> set[tuple[str, str]]:
    with path.open("rb") as file:
        kept = pickle.load(file)  # noqa: S301 - our own file, written by a worker
    return set(zip(kept["lead_id"].astype(str), kept["phone"].astype(str), strict=True))


def versions() -> dict[str, str | int]:
    import duckdb

    # DuckDB runs on every core by default; ours is one Python thread.
    threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    return {
        "python_version": platform.python_version(),
        "pandas_version": pd.__version__,
        "duckdb_version": duckdb.__version__,
        "duckdb_threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out, args.repeat)
        return

    started = time.perf_counter()
    leads = build_leads(args.rows)
    build_s = time.perf_counter() - started
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        data = Path(tmp) / "leads.pickle"
        with data.open("wb") as file:
            pickle.dump(leads, file, protocol=pickle.HIGHEST_PROTOCOL)
        del leads
        kept: dict[str, set] = {}
        best: dict[str, float] = {}
        for name in IMPLEMENTATIONS:
            out = Path(tmp) / f"{name}.pickle"
            measured = run_worker(name, data, out, args.repeat)
            kept[name] = kept_pairs(out)
            best[name] = min(measured["seconds"])
            results[name] = {
                "best_s": round(best[name], 3),
                "all_s": [round(s, 3) for s in measured["seconds"]],
                "rows_per_s": round(args.rows / best[name]),
                "peak_rss_delta_mib": round(measured["peak_mib"] - measured["baseline_mib"], 1),
                "baseline_rss_mib": round(measured["baseline_mib"], 1),
                "peak_was_reset": measured["peak_was_reset"],
                "kept_rows": len(kept[name]),
            }

    mismatch = {
        name: len(kept["duckdb"] ^ kept[name]) for name in IMPLEMENTATIONS if name != "duckdb"
    }
    ratio = best["ours"] / best["duckdb"]
    print(f"{args.rows:,} leads (built in {build_s:.1f} s), best of {args.repeat} runs")
    print(f"{'implementation':<16} {'rows/s':>11} {'best s':>8} {'peak RSS +MiB':>14} {'kept':>9}")
    for name, r in results.items():
        print(
            f"{name:<16} {r['rows_per_s']:>11,} {r['best_s']:>8.3f} "
            f"{r['peak_rss_delta_mib']:>14.1f} {r['kept_rows']:>9,}"
        )
    print(f"ratio ours/duckdb time: {ratio:.2f} (goal <= {GOAL_RATIO})")
    print(f"kept-row mismatches against duckdb: {mismatch}")
    summary = {
        "benchmark": "transform_vs_duckdb",
        "rows": args.rows,
        "repeat": args.repeat,
        **results,
        "ratio_ours_over_duckdb": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "within_goal": ratio <= GOAL_RATIO,
        "kept_mismatch": mismatch,
        "kept_rows_match": not any(mismatch.values()),
        "memory": "VmHWM during the runs minus VmRSS after loading and warm-up, "
        "one subprocess per implementation",
        **versions(),
    }
    print("BENCH_JSON " + json.dumps(summary, ensure_ascii=False))
    if not summary["kept_rows_match"]:
        raise SystemExit(f"the implementations kept different rows: {mismatch}")


if __name__ == "__main__":
    main()
