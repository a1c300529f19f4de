-- What a producer sent with a prepared message for its check-back (`checkContext`): the SDK's
-- transaction() sends its database's identity, and its check-back handler answers only for
-- messages of its own database. Sent back in the check-back body as "context"; null: none sent.
-- A nullable column without a default: added to the partitioned parent, and so to every
-- partition, without rewriting a row.
alter table messages add column check_context text;
