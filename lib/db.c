/*
 * db - the account database (see db.h).
 */
#include "db.h"

#include <errno.h>
#include <stdio.h>

#include "schema.h"

/* db_path - ROOT/db/accounts.sqlite */
int db_path(struct str *out, const char *root)
{
	out->len = 0;
	return str_cats(out, root) || str_cats(out, "/db/accounts.sqlite") ?
	       -ENOMEM : 0;
}

/* db_rc - map SQLite result codes onto the errno convention */
int db_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: return 0;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_PERM: case SQLITE_READONLY: case SQLITE_AUTH: return -EACCES;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_CONSTRAINT: return -EEXIST;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EILSEQ;
	default: return -EIO;
	}
}

/* db_exec - run SQL without results */
int db_exec(sqlite3 *db, const char *sql)
{
	return db_rc(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* db_version - PRAGMA user_version, or a negative errno code */
int db_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v, rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_rc(rc);
	rc = sqlite3_step(st);
	v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : db_rc(rc);
	sqlite3_finalize(st);
	return v;
}

/* last_version - the newest schema this program knows */
static int last_version(void)
{
	return schema_migrations[schema_migration_count - 1].version;
}

/* too_new - -EPROTO when a newer program made the database */
static int too_new(sqlite3 *db)
{
	int v = db_version(db);

	return v < 0 ? v : v > last_version() ? -EPROTO : 0;
}

/* migrate - apply every migration newer than the database */
static int migrate(sqlite3 *db)
{
	int i, v, r;

	v = db_version(db);
	if (v < 0)
		return v;
	if (v > last_version())
		return -EPROTO;
	for (i = 0; i < schema_migration_count; i++) {
		const struct migration *m = &schema_migrations[i];
		char pragma[64];

		if (m->version <= v)
			continue;
		r = db_exec(db, "BEGIN IMMEDIATE");
		if (r < 0)
			return r;
		/* another process may have migrated while we waited */
		v = db_version(db);
		if (v >= m->version) {
			db_exec(db, "ROLLBACK");
			continue;
		}
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d",
			 m->version);
		r = db_exec(db, m->sql);
		if (r == 0)
			r = db_exec(db, pragma);
		if (r == 0)
			r = db_exec(db, "COMMIT");
		if (r < 0) {
			db_exec(db, "ROLLBACK");
			return r;
		}
	}
	return 0;
}

/* db_open - open (or with create, create) and migrate the database */
int db_open(const char *root, int create, sqlite3 **db_r)
{
	struct str path = STR_INIT;
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	int r, rc;

	if (create)
		flags |= SQLITE_OPEN_CREATE;
	r = db_path(&path, root);
	if (r < 0)
		return r;
	rc = sqlite3_open_v2(path.s, &db, flags, NULL);
	str_free(&path);
	if (rc != SQLITE_OK) {
		r = db_rc(rc);
		sqlite3_close(db);
		return r;
	}
	sqlite3_busy_timeout(db, 10000);
	/* a checkpoint at every close would cost each short-lived vadmin two
	 * more fsyncs; SQLite checkpoints during commits instead */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/* before the journal mode is set: a newer program's database (a
	 * backup put back under an older Facteur, say) stays as it was */
	r = too_new(db);
	if (r == 0)
		r = db_exec(db, "PRAGMA journal_mode = WAL");
	if (r == 0)
		r = db_exec(db, "PRAGMA synchronous = FULL");
	if (r == 0)
		r = db_exec(db, "PRAGMA foreign_keys = ON");
	if (r == 0)
		r = migrate(db);
	if (r < 0) {
		sqlite3_close(db);
		return r;
	}
	*db_r = db;
	return 0;
}

/* db_errmsg - SQLite's own words for the last error */
const char *db_errmsg(sqlite3 *db)
{
	return db ? sqlite3_errmsg(db) : "no database";
}
