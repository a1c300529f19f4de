-- Payloads and headers are kept as the JSON text the producer sent (json, not jsonb): nothing
-- queries inside them, jsonb's parse on insert and print on every delivery cost CPU on each
-- message, and consumers get the producer's key order back. Rewrites the table once.
alter table messages
  alter column payload type json using payload::json,
  alter column headers type json using headers::json,
  alter column headers set default '{}';
