-- chatkeep PostgreSQL schema, version 3: messages.session_id no longer references
-- sessions. The foreign key checked every inserted message with a query of its own (a
-- trigger that locks the session row), on the path of every append. The backend keeps
-- the rule itself instead (see postgres_query.py): a message is inserted only by the
-- statement that updates, or the transaction that inserted, its session row, and only if
-- that row is there; a session row is deleted with its messages, in one statement that
-- runs while the row is locked or only if the row is still the version read.

ALTER TABLE messages DROP CONSTRAINT messages_session_id_fkey;
