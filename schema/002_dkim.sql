-- 002: DKIM signing keys (docs/authentication.md). The private key is a
-- file, control/dkim/KEY/SELECTOR.pem (0600, the mail user's; KEY as in
-- lib/acct.h); a row is what the key is, and control/dkim.cdb, which the
-- signer reads, is generated from these rows.
CREATE TABLE dkim_keys (
    id          INTEGER PRIMARY KEY,
    -- the domain whose mail it signs (d=); an alias domain has its own
    domain_id   INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    -- one DNS label: SELECTOR._domainkey.DOMAIN holds the public key
    selector    TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('rsa', 'ed25519')),
    -- RSA modulus bits (2048..4096); 256 for Ed25519
    bits        INTEGER NOT NULL,
    -- the p= value of the TXT record, base64
    public_key  TEXT NOT NULL,
    created     INTEGER NOT NULL,
    UNIQUE (domain_id, selector)
);

-- Any change to the keys owes control/dkim.cdb (pending kind 'dkim'),
-- whoever made it: a deleted domain takes its keys with it (cascade).
CREATE TRIGGER dkim_keys_add AFTER INSERT ON dkim_keys BEGIN
    INSERT OR IGNORE INTO pending(kind, arg) VALUES ('dkim', '');
END;
CREATE TRIGGER dkim_keys_del AFTER DELETE ON dkim_keys BEGIN
    INSERT OR IGNORE INTO pending(kind, arg) VALUES ('dkim', '');
END;
