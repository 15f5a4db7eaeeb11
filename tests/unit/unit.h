/*
 * unit.h -- helpers shared by the unit suites (tests/unit/test_<module>.c).
 *
 * The suites reach the library's internals (the headers in lib/) and test one
 * module each.  What they share lives here:
 *
 *  1. Scratch directories.  ut_tmpdir() makes a fresh directory in the
 *     current working directory, which meson sets to the build directory
 *     (tests/unit/ under it): the files land on the same disk as the build,
 *     never on a tmpfs /tmp where fdatasync and preallocation behave
 *     differently.  A passing test removes its directory; a failing one
 *     leaves it behind to be looked at.
 *  2. Byte surgery on files (flip, overwrite, truncate, read back), for the
 *     corruption tests.
 *  3. A deterministic event generator with owned string storage, and a
 *     field-by-field comparison of two events that tells NULL from "".
 *  4. ut_main(): runs a suite with Check and turns the result into an exit
 *     status for meson.
 */
#ifndef UT_UNIT_H
#define UT_UNIT_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "eventstore.h"

/* ---- scratch directories ---------------------------------------------- */

/* Creates "./ut-<tag>-XXXXXX" and writes its absolute path into out. */
void ut_tmpdir(char *out, size_t cap, const char *tag);
/* Removes a directory tree (ignores a missing one). */
void ut_rmrf(const char *path);
/* Counts the entries of dir whose names end in suffix (-1: no dir). */
int ut_count_suffix(const char *dir, const char *suffix);
/* Whether path exists. */
int ut_exists(const char *path);

/* ---- byte surgery ----------------------------------------------------- */

/* Size of a file (fails the test if it cannot stat it). */
uint64_t ut_file_size(const char *path);
/* XORs the byte at off with mask (mask must be non-zero). */
void ut_flip_byte(const char *path, uint64_t off, uint8_t mask);
/* Overwrites len bytes at off (extending the file if needed). */
void ut_write_at(const char *path, uint64_t off, const void *buf, size_t len);
/* Cuts the file to size bytes. */
void ut_truncate(const char *path, uint64_t size);
/* Reads a whole file into a malloc'ed buffer (owned by the caller). */
uint8_t *ut_read_file(const char *path, size_t *len_out);

/* ---- events ----------------------------------------------------------- */

/* Owned storage for the strings of one generated event. */
typedef struct ut_text {
  char event[32], message_id[48], anonymous_id[32], user_id[32];
  char previous_id[32], group_id[32], path[32], url[64], referrer[64];
  char properties[128], user_agent[48], ip[48];
} ut_text;

/* Fills *ev with a deterministic event number i (ts_us given), strings in
 * *tx.  Some fields are NULL and some "" depending on i, so that both
 * round-trip; message_id is "m-<tag>-<i>", unique per (tag, i). */
void ut_event(es_event *ev, ut_text *tx, const char *tag, int i, int64_t ts_us);

/* Asserts that two events are equal field by field; NULL differs from "".
 * `what` prefixes failure messages. */
void ut_event_eq(const es_event *got, const es_event *want, const char *what);

/* ---- running ---------------------------------------------------------- */

/* Runs the suite (CK_NORMAL output); returns 0 if every test passed. */
/* Scans every event of a tenant (es_scan, time order) and calls fn per
 * event; the scan must end cleanly.  Returns the number of events. */
size_t ut_scan(es_db *db, const char *tenant,
               void (*fn)(void *ud, const es_event *ev), void *ud);

/* The message ids of a tenant in scan order, each followed by '\n'
 * (malloc'ed); *n_out (may be NULL) gets their number. */
char *ut_scan_ids(es_db *db, const char *tenant, int *n_out);

int ut_main(Suite *s);

#endif
