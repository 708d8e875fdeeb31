-- Leads changed in the run's window, read in chunks by the DAG's extract task.
-- Rendered by Airflow's templating first (macros and Variables work here); the window
-- itself is passed as bound parameters (window_start, window_end), never pasted into the text.
-- (No colon-prefixed words in these comments: they would be read as parameters.)
-- Columns: lead_id, name, phone, email, company, sex, source_id, industry_id, grade_id,
-- updated_at (UTC), plus whatever include/lead_load/core/field_mapping.yaml maps to components.
-- Before reading, the extract runs this query wrapped as a subquery with WHERE 1 = 0 to check
-- those columns and updated_at's type (docs/warehouse-contract.md): keep it one SELECT.
-- On a SQLite warehouse, sqlite/extract_leads.sql is read instead (updated_at is text there).
SELECT *
FROM leads
WHERE updated_at >= :window_start
  AND updated_at < :window_end
ORDER BY lead_id
