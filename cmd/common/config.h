/*
 * config.h -- the servers' config file, beside their flags.
 *
 * One format for es-ingestd and es-queryd: lines of `key = value`, where
 * key is a flag's name without its "--" (`listen = 127.0.0.1:8080` is
 * `--listen 127.0.0.1:8080`), value the rest of the line with blanks
 * trimmed at both ends; blank lines and lines whose first non-blank is
 * '#' are ignored (a '#' after a value belongs to the value).
 * docs/OPERATIONS.md, "Config file", is the operator's page.
 *
 * The file is not read by a parser of its own kinds: svc_args_build turns
 * it into flags put before the command line's, and each server's own flag
 * loop reads them.  So:
 *
 *  1. every flag has a key, including flags added later, with no table to
 *     keep in step; a key no flag has is refused as an unknown flag;
 *  2. flags win: a server's flag loop lets a later flag replace an
 *     earlier one, and the command line's come later;
 *  3. a value is checked by the same code, with the same message, as on
 *     the command line; errors about the file's flags name FILE:LINE
 *     (svc_usage_error prefixes them while such a flag is being read).
 *
 * Refused in the file itself: a line without '=', a key that is not
 * [a-z0-9-]+, an empty value, a key given twice, a NUL byte, the keys
 * config, check-config, help and version.
 */
#ifndef ES_SVC_CONFIG_H
#define ES_SVC_CONFIG_H

#include <stddef.h>

#define SVC_CONFIG_BYTES_MAX (1u << 20)
#define SVC_CONFIG_LINES_MAX 4096

/* One `key = value` of a file, pointing into the text given to
 * svc_config_parse (which it modifies). */
typedef struct svc_config_entry {
  const char *key, *value;
  int line; /* 1-based */
} svc_config_entry;

/*
 * Parses text (NUL-terminated, len bytes, modified in place: keys and
 * values are cut out of it) into *entries_out (malloc'ed; free() it) and
 * *count_out.  0, or -1 with err saying which line and why (it quotes a
 * key, never a value: a value may be a secret's path or an S3 URL, but
 * keys are flag names).  On -1 *entries_out is NULL and *count_out 0.
 */
int svc_config_parse(char *text, size_t len, svc_config_entry **entries_out,
                     size_t *count_out, char *err, size_t err_size);

/* The command line with the config file's flags in front. */
typedef struct svc_args {
  int argc;
  char **argv;             /* argv[0], the file's flags, the command line's */
  int check_config;        /* --check-config was given */
  const char *config_path; /* --config FILE, or NULL */
  /* private */
  int file_end; /* argv[1 .. file_end) came from the file */
  svc_config_entry *entries;
  size_t entries_count;
  char *text;
  char **flag_names; /* "--key" of each entry */
} svc_args;

/*
 * Builds out from the command line: removes "--config FILE" and
 * "--check-config" from it and puts the file's `key = value` lines in
 * front as "--key value".  While a flag loop reads out->argv with
 * svc_next_flag, errors of svc_usage_error name the file and line of a
 * flag that came from the file.  0, or 2 after reporting the error (an
 * unreadable or malformed file, --config without a value or twice).
 * svc_args_free releases it (also after an error).
 */
int svc_args_build(const char *prog, int argc, char **argv, svc_args *out);
void svc_args_free(svc_args *a);

/* The flag loop is over: later usage errors are about the whole
 * configuration, not a flag of the file. */
void svc_args_done(void);

/* For svc_next_flag: sets the prefix of svc_usage_error's messages to
 * "FILE:LINE: " when argv[i] is a flag of the file being read, else to
 * nothing. */
void svc_args_at(char *const *argv, int i);
/* That prefix ("" when none). */
const char *svc_args_origin(void);

/*
 * --check-config's data directory check.  read_only: DIR exists and is a
 * directory the server can read.  Else DIR is a directory the server can
 * write, or does not exist and its parent is one (the server creates
 * it).  0, or -1 with err set.
 */
int svc_check_data_dir(const char *dir, int read_only, char *err,
                       size_t err_size);

#endif
