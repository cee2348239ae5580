-- 005 (PostgreSQL only: several hosts): a pending journal per host, each
-- host's mark on the change log, and the log's pruning (docs/scale-out.md).
--
-- The journal per host. The table keeps every host's rows, each under the
-- id of the host whose vadmin owes the work (the session's facteur.host,
-- which lib/store sets from ROOT/db/host.id when it connects); `pending`,
-- the name every statement of vadmin's uses, becomes the view of this
-- host's rows, through which vadmin inserts, reads and deletes as before
-- (a simple view: PostgreSQL writes through it to the table). So a host
-- never does the work a killed vadmin of another host left, on its own
-- files. A row from before this migration (host '') is anyone's, as every
-- row was.
ALTER TABLE pending RENAME TO pending_all;
ALTER TABLE pending_all ADD COLUMN host TEXT COLLATE "C" NOT NULL
    DEFAULT coalesce(current_setting('facteur.host', true), '');
ALTER TABLE pending_all DROP CONSTRAINT pending_kind_arg_key;
ALTER TABLE pending_all ADD UNIQUE (host, kind, arg);
CREATE VIEW pending AS
    SELECT id, kind, arg FROM pending_all
    WHERE host = coalesce(current_setting('facteur.host', true), '')
       OR host = '';

-- Every change is logged, even one whose work this host's journal already
-- owes (a row a killed vadmin left, which ON CONFLICT DO NOTHING keeps):
-- the trigger runs BEFORE the insert, which PostgreSQL does for every row
-- offered, whether or not the conflict then drops it. As an AFTER trigger
-- (003) it saw only the rows inserted, and the other hosts missed such a
-- change until it was made again. It also takes the writers' lock (the
-- advisory lock of lib/store_pg.c, PG_LOCK), which vadmin's transactions
-- hold already but the rows owed while their work is done (a re-split's
-- `global` and `sweep`) did not: so numbers are drawn in the order
-- their transactions commit, and a watcher that has applied number N
-- never later sees a smaller one appear (it would skip it, and the
-- pruning would delete it).
DROP TRIGGER pending_logged ON pending_all;
CREATE OR REPLACE FUNCTION pending_logged() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1180787572);
    INSERT INTO changes(kind, arg) VALUES (NEW.kind, NEW.arg);
    PERFORM pg_notify('facteur_changes', '');
    RETURN NEW;
END $$;
CREATE TRIGGER pending_logged BEFORE INSERT ON pending_all
    FOR EACH ROW EXECUTE FUNCTION pending_logged();

-- Each host's mark: the last change its `vadmin watch` applied (seen; its
-- db/changes.seen stays the truth, this is a copy for the others) and when
-- it said so (at, Unix time). The rows every host seen in the last 7 days
-- has applied are deleted (vwatch.c); changes_pruned.upto is the last id
-- deleted, so a host whose mark is older (down longer than that)
-- regenerates every table, as a new host does.
CREATE TABLE hosts (
    name        TEXT COLLATE "C" PRIMARY KEY,
    seen        BIGINT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE TABLE changes_pruned (upto BIGINT NOT NULL);
INSERT INTO changes_pruned VALUES (0);
