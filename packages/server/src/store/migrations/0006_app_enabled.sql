-- An admin may disable a producer app for a while (unlike delete): its key is refused with 403
-- app_disabled until it is enabled again; its messages keep being delivered and checked back.
alter table apps add column enabled boolean not null default true;
