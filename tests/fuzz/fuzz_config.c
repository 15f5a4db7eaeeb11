/*
 * fuzz_config.c -- fuzz target: the servers' config file
 * (cmd/common/config.c, svc_config_parse), `key = value` lines that
 * es-ingestd and es-queryd turn into flags.
 *
 * Input: the file's bytes.
 *
 * Properties beyond "no crash, no leak":
 *  1. Accepted entries have keys of [a-z0-9-] not starting with '-', none
 *     of config, check-config, help, version, each once; values are
 *     non-empty, hold no newline and no blank at either end; lines grow.
 *  2. Every line of the input that is neither blank nor a comment is an
 *     entry (nothing is skipped silently).
 *  3. A refusal leaves no entries and a message naming a line (or the
 *     NUL byte, or the line limit).
 */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "fuzz_util.h"

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Lines of doc[0..size) that hold something other than blanks and are
 * not comments. */
static size_t meaningful_lines(const char *doc, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < size;) {
    while (i < size && blank(doc[i]))
      i++;
    if (i < size && doc[i] != '\n' && doc[i] != '#')
      n++;
    while (i < size && doc[i] != '\n')
      i++;
    i++;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1), err[512] = "";
  memcpy(text, data, size);
  text[size] = '\0';
  svc_config_entry *es;
  size_t n;
  if (svc_config_parse(text, size, &es, &n, err, sizeof err) == 0) {
    FUZZ_ASSERT(memchr(data, '\0', size) == NULL);
    FUZZ_ASSERT(n == meaningful_lines((const char *)data, size));
    for (size_t i = 0; i < n; i++) {
      size_t kn = fuzz_touch(es[i].key), vn = fuzz_touch(es[i].value);
      FUZZ_ASSERT(kn > 0 && es[i].key[0] != '-');
      FUZZ_ASSERT(strspn(es[i].key, "abcdefghijklmnopqrstuvwxyz0123456789-") ==
                  kn);
      FUZZ_ASSERT(strcmp(es[i].key, "config") && strcmp(es[i].key, "help") &&
                  strcmp(es[i].key, "check-config") &&
                  strcmp(es[i].key, "version"));
      FUZZ_ASSERT(vn > 0 && !blank(es[i].value[0]) &&
                  !blank(es[i].value[vn - 1]) &&
                  strchr(es[i].value, '\n') == NULL);
      FUZZ_ASSERT(i == 0 || es[i].line > es[i - 1].line);
      for (size_t k = 0; k < i; k++)
        FUZZ_ASSERT(strcmp(es[k].key, es[i].key) != 0);
    }
    free(es);
  } else {
    FUZZ_ASSERT(es == NULL && n == 0);
    FUZZ_ASSERT(strncmp(err, "line ", 5) == 0 ||
                strncmp(err, "a NUL", 5) == 0 ||
                strncmp(err, "more than", 9) == 0);
  }
  free(text);
  return 0;
}
