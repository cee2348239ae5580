-- 004 (PostgreSQL only: several hosts): what the hosts share besides the
-- accounts (SPEC.md "Several hosts"), written and read only by each host's
-- `vadmin share` (docs/scale-out.md). The servers never see the database:
-- they keep their files and tables, which the bridge keeps in step.
--
-- grants: the newest POP-before-SMTP login of a client address on any
-- host (the mtime of open-smtp/IP there), in seconds since the epoch. A
-- row only moves forward, so a grant a host applied and reports back
-- changes nothing and notifies nobody.
CREATE TABLE grants (
    ip          TEXT COLLATE "C" PRIMARY KEY,
    at          BIGINT NOT NULL,
    host        TEXT COLLATE "C" NOT NULL
);
CREATE INDEX grants_at ON grants (at);

CREATE FUNCTION grant_shared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('facteur_grants',
                      NEW.ip || ' ' || NEW.at || ' ' || NEW.host);
    RETURN NULL;
END $$;
CREATE TRIGGER grant_shared AFTER INSERT OR UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION grant_shared();

-- fails: the failed logins of a client (key 'ip GROUP') or a POP3 user
-- name (key 'user NAME') counted by one host's server (service 'pop3' or
-- 'smtp') since `at` minus the window; a host's count starts again at 1
-- once its last failure is older than the window (lib/limit's 900 s).
CREATE TABLE fails (
    host        TEXT COLLATE "C" NOT NULL,
    service     TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    count       BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (service, key, host)
);
CREATE INDEX fails_at ON fails (at);

CREATE FUNCTION fail_shared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('facteur_fails',
                      NEW.service || ' ' || NEW.host || ' ' || NEW.key);
    RETURN NULL;
END $$;
CREATE TRIGGER fail_shared AFTER INSERT OR UPDATE ON fails
    FOR EACH ROW EXECUTE FUNCTION fail_shared();
