/*
 * db - the account database, ROOT/db/accounts.sqlite.
 *
 * db_open() opens it in WAL mode with foreign keys on, synchronous=FULL
 * (a committed change survives a power cut) and a busy timeout, and brings
 * the schema up to date with the numbered migrations of schema/, each in
 * its own transaction with PRAGMA user_version. A database newer than the
 * program is refused (-EPROTO) rather than guessed at, before anything
 * is written to it. db_rc() maps a SQLite result code onto -errno. This
 * is the SQLite back end of lib/store, which callers use instead.
 */
#ifndef FACTEUR_DB_H
#define FACTEUR_DB_H

#include <sqlite3.h>

#include "str.h"

int db_path(struct str *out, const char *root);
int db_open(const char *root, int create, sqlite3 **db_r);
int db_exec(sqlite3 *db, const char *sql);
int db_version(sqlite3 *db);
const char *db_errmsg(sqlite3 *db);
int db_rc(int rc);

#endif
