-- The extract for a SQLite warehouse: extract_leads.sql beside this folder, but SQLite has no
-- date-time type and keeps updated_at as text, which compares as text. julianday() reads
-- every format the README's "Warehouse contract" lists (T or space, fractional seconds,
-- Z or +HH:MM/-HH:MM, none = UTC) as one instant, so the window is exact whatever the
-- spelling (to the millisecond, SQLite's precision). Text it cannot read is in no window:
-- count_missing_updated_at.sql in this folder counts those rows for the run's summary.
-- (No colon-prefixed words in these comments: they would be read as parameters.)
-- Keep the table and columns the same as in extract_leads.sql when you change one of them.
SELECT *
FROM leads
WHERE julianday(updated_at) >= julianday(:window_start)
  AND julianday(updated_at) < julianday(:window_end)
ORDER BY lead_id
