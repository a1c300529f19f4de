-- An app may read (not change) the messages of topics it consumes, to reconcile what it missed.
alter table apps add column read_topics text[] not null default '{}';
