-- count_missing_updated_at.sql for a SQLite warehouse: the rows without updated_at, and the
-- rows whose updated_at julianday() cannot read (a format the README's "Warehouse contract"
-- does not list, e.g. 24/11/2026 or a Unix time). Neither falls in any window, so neither is
-- ever loaded; both counts go into the run's summary. Keep the table and column the same as
-- in extract_leads.sql in this folder.
SELECT COUNT(*) - COUNT(updated_at) AS missing,
       COUNT(updated_at) - COUNT(julianday(updated_at)) AS unreadable
FROM leads
