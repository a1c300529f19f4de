-- An app's message ids are its own. A message is stored under its full id: "<app>/<id>" for an
-- app's message, the bare id for a message the admin sent (no app). App names and producer ids
-- cannot contain "/", so the first "/" splits a full id, and two apps may use the same id without
-- either seeing, blocking or learning about the other's. The full id is also the webhook-id
-- receivers deduplicate on, so it stays unique across apps.
-- Existing app messages move to their full id; the tables that refer to a message follow.
alter table deliveries drop constraint deliveries_message_id_fkey,
  add constraint deliveries_message_id_fkey foreign key (message_id) references messages (id) on delete cascade on update cascade;
alter table checks drop constraint checks_message_id_fkey,
  add constraint checks_message_id_fkey foreign key (message_id) references messages (id) on delete cascade on update cascade;
alter table alerts drop constraint alerts_message_id_fkey,
  add constraint alerts_message_id_fkey foreign key (message_id) references messages (id) on delete cascade on update cascade;
-- attempts.message_id has no foreign key (it is written with each result): moved by hand, first.
update attempts a set message_id = m.app || '/' || m.id from messages m where a.message_id = m.id and m.app is not null;
update messages set id = app || '/' || id where app is not null;
