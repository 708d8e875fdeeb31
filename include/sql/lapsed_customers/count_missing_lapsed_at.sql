-- Customers with no lapsed_at: in no window, never loaded (counted in the run's summary).
SELECT COUNT(*)
FROM customers
WHERE lapsed_at IS NULL
