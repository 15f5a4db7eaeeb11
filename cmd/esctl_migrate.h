/*
 * esctl_migrate.h -- esctl's migration commands (docs/MIGRATION.md):
 * `import` (esctl_import.c) loads the legacy pipeline's history, and
 * `reconcile` (esctl_reconcile.c) compares its counts with this store's.
 * Each parses its own arguments (file names are positional) and returns
 * esctl's exit status: 0, 1 (library or system error), 2 (bad usage or
 * input).
 */
#ifndef ESCTL_MIGRATE_H
#define ESCTL_MIGRATE_H

#include <stddef.h>

int esctl_import(int argc, char **argv);
int esctl_reconcile(int argc, char **argv);

/* "esctl CMD: why (try 'esctl CMD --help')" on stderr; returns 2. */
__attribute__((format(printf, 2, 3))) int migrate_usage(const char *cmd,
                                                        const char *fmt, ...);
/* Flag argv[*i] ("--name VALUE" or "--name=VALUE") among the nnames
 * names: 0 with *k_out its index and *value_out its value (*i moved past
 * a separate value), else 2 after printing why (unknown, or no value). */
int esctl_flag_value(const char *cmd, int argc, char **argv, int *i,
                     const char *const *names, size_t nnames, size_t *k_out,
                     const char **value_out);
/* "esctl: <es_strerror>: <es_errmsg>" on stderr; returns 1. */
int migrate_lib_error(int status);

#endif /* ESCTL_MIGRATE_H */
