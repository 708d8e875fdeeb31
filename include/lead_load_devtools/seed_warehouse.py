"""Seed a warehouse database with synthetic leads (used by the compose stack's trial warehouse).

python -m lead_load_devtools.seed_warehouse --url postgresql://user:pass@host/db --leads 5000
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from lead_load_devtools.synthetic import generate, write_leads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the warehouse")
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--days", type=int, default=3, help="updated_at spread over N days")
    args = parser.parse_args(argv)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    leads = generate(args.leads, seed=7, start=end - timedelta(days=args.days), end=end)
    write_leads(create_engine(args.url), leads.frame, replace=True)
    print(f"Seeded {args.leads} leads ({len(leads.valid_phones)} valid distinct numbers).")


if __name__ == "__main__":
    main()
