-- count_missing_lapsed_at.sql for a SQLite warehouse: customers without lapsed_at, and those
-- whose lapsed_at julianday() cannot read; neither is ever loaded.
SELECT COUNT(*) - COUNT(lapsed_at) AS missing,
       COUNT(lapsed_at) - COUNT(julianday(lapsed_at)) AS unreadable
FROM customers
