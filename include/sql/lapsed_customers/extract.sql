-- The lapsed_customers load (include/lead_load/loads/lapsed_customers.yaml): customers who
-- lapsed in the run's window. Rendered by Airflow's templating first; the window is passed
-- as bound parameters (window_start, window_end). Keep it one SELECT (the extract checks
-- its columns first). (No colon-prefixed words in these comments: they would be read as
-- parameters.)
SELECT customer_id, mobile, full_name, email, employer, lapsed_at
FROM customers
WHERE lapsed_at >= :window_start
  AND lapsed_at < :window_end
ORDER BY customer_id
