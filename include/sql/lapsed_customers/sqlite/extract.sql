-- extract.sql for a SQLite warehouse: lapsed_at is text there, compared as an instant with
-- julianday() (see include/sql/sqlite/extract_leads.sql). (No colon-prefixed words in these
-- comments: they would be read as parameters.)
SELECT customer_id, mobile, full_name, email, employer, lapsed_at
FROM customers
WHERE julianday(lapsed_at) >= julianday(:window_start)
  AND julianday(lapsed_at) < julianday(:window_end)
ORDER BY customer_id
