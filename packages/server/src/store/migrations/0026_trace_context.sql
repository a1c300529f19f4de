-- A message's W3C trace context: the producer's, or the service's publish span's. Every
-- delivery attempt and check-back of the message carries it on, as a child of it. It is not
-- part of the message's content (content_hash): the same id and content sent again from
-- another trace is a repeat, answered as stored, and keeps the context it was first stored with.
alter table messages add column traceparent text, add column tracestate text;
