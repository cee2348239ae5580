/*
 * schema - the SQL migrations compiled into the programs (from schema/).
 */
#ifndef FACTEUR_SCHEMA_H
#define FACTEUR_SCHEMA_H

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration schema_migrations[];
extern const int schema_migration_count;
/* the same migrations in PostgreSQL's dialect (schema/pg/), version for
 * version */
extern const struct migration schema_pg_migrations[];
extern const int schema_pg_migration_count;

#endif
