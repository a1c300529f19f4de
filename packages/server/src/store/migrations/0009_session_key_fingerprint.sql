-- Tidings schema, version 9: console sessions end when the admin key changes. Append-only:
-- never edit after it has landed.

-- Each session carries a fingerprint of the admin key it was started with (HMAC-SHA256 keyed
-- by a value derived from the key, over the session's id hash: never the key itself); a session
-- whose fingerprint is not the current key's is refused. Sessions started before this cannot
-- show which key they came from: they end, and their operators sign in again.
delete from console_sessions;
alter table console_sessions add column key_fingerprint bytea not null;
