-- 001: domains, users, aliases, forwards, and the journal of file work
-- that must follow a committed change (see docs/vadmin.md, "Crash safety").

CREATE TABLE domains (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- NULL for a real domain; the real domain's id for an alias domain
    alias_of    INTEGER REFERENCES domains(id) ON DELETE CASCADE,
    -- 'bounce', 'delete' or a destination address
    catchall    TEXT NOT NULL DEFAULT 'bounce',
    -- default quota given to new users of the domain; 0 = none
    quota_bytes INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
    quota_msgs  INTEGER NOT NULL DEFAULT 0 CHECK (quota_msgs >= 0),
    -- files each generated table is split into (a power of two; see
    -- lib/acct.h), and the user count that decides it, kept by triggers
    shards      INTEGER NOT NULL DEFAULT 1,
    nusers      INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    domain_id   INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local       TEXT NOT NULL,
    -- crypt(3) hash: $y$ (yescrypt) or $6$ (SHA-512-crypt); '!' = no login
    hash        TEXT NOT NULL,
    -- HMAC-MD5 context for CRAM-MD5, 64 hex digits; NULL when unknown
    cram        TEXT,
    name        TEXT NOT NULL DEFAULT '',
    quota_bytes INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
    quota_msgs  INTEGER NOT NULL DEFAULT 0 CHECK (quota_msgs >= 0),
    -- bit 1: POP3 disabled, bit 2: SMTP AUTH disabled, bit 4: delivery disabled
    flags       INTEGER NOT NULL DEFAULT 0,
    -- relative to the root: domains/DOMAIN/USER/Maildir
    maildir     TEXT NOT NULL,
    -- acct_bucket(local): 16 bits that choose the table shard
    bucket      INTEGER NOT NULL,
    created     INTEGER NOT NULL,
    UNIQUE (domain_id, local)
);
CREATE INDEX users_bucket ON users(domain_id, bucket);

CREATE TRIGGER users_count_add AFTER INSERT ON users BEGIN
    UPDATE domains SET nusers = nusers + 1 WHERE id = NEW.domain_id;
END;
CREATE TRIGGER users_count_del AFTER DELETE ON users BEGIN
    UPDATE domains SET nusers = nusers - 1 WHERE id = OLD.domain_id;
END;

CREATE TABLE aliases (
    domain_id   INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local       TEXT NOT NULL,
    dest        TEXT NOT NULL,
    PRIMARY KEY (domain_id, local, dest)
) WITHOUT ROWID;

CREATE TABLE forwards (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    dest        TEXT NOT NULL,
    keep        INTEGER NOT NULL DEFAULT 0
);

-- Work on files that a committed transaction still owes: 'cdb' DOMAIN
-- (all of that domain's CDBs), 'user' LOCAL@DOMAIN (the shard holding it),
-- 'global' '' (assign.cdb and rcpthosts.cdb), 'sweep' DOMAIN (table files
-- the domain no longer uses),
-- 'rmdir' PATH (a deleted user's or domain's directory). Rows are written
-- in the same transaction as the change and removed once the work is done,
-- so a vadmin killed in between leaves work the next run finishes.
CREATE TABLE pending (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    arg         TEXT NOT NULL,
    UNIQUE (kind, arg)
);
