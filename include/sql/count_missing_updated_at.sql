-- Rows of the leads table with no updated_at: they fall in no window and are never loaded.
-- Counted once per run for the summary, so the data owner can fix them. Keep the table and
-- column the same as in extract_leads.sql when you change that. A second column, if the query
-- returns one, counts rows whose updated_at cannot be read as a time (see
-- sqlite/count_missing_updated_at.sql, used on a SQLite warehouse).
SELECT COUNT(*)
FROM leads
WHERE updated_at IS NULL
