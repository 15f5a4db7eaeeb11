/*
 * config.c -- the servers' config file turned into flags; see config.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "svc.h"

/* The arguments being read by a flag loop and the prefix of its errors
 * (one flag loop per process, on the main thread, before any other). */
static const svc_args *g_args;
static char g_origin[512];

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* s[0..*n) without blanks at both ends. */
static char *trim(char *s, size_t *n) {
  while (*n > 0 && is_blank(*s))
    s++, (*n)--;
  while (*n > 0 && is_blank(s[*n - 1]))
    (*n)--;
  return s;
}

static int key_ok(const char *k) {
  size_t n = strlen(k);
  return n > 0 && n <= 64 &&
         strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789-") == n && k[0] != '-';
}

/* Keys that are not settings: the file's own flags and the informative
 * ones. */
static int key_reserved(const char *k) {
  static const char *const reserved[] = {"config", "check-config", "help",
                                         "version"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcmp(k, reserved[i]) == 0)
      return 1;
  return 0;
}

/* One line (NUL-terminated in place) into e; 0, 1 (nothing on it) or -1
 * with err set. */
static int parse_line(char *line, size_t n, int lineno, svc_config_entry *e,
                      char *err, size_t err_size) {
  line = trim(line, &n);
  if (n == 0 || line[0] == '#')
    return 1;
  char *eq = memchr(line, '=', n);
  if (eq == NULL) {
    snprintf(err, err_size, "line %d: want key = value", lineno);
    return -1;
  }
  size_t kn = (size_t)(eq - line), vn = n - kn - 1;
  char *key = trim(line, &kn), *value = trim(eq + 1, &vn);
  key[kn] = '\0';
  value[vn] = '\0';
  if (!key_ok(key)) {
    snprintf(err, err_size,
             "line %d: a key is a flag's name without \"--\" "
             "([a-z0-9-], such as listen)",
             lineno);
    return -1;
  }
  if (key_reserved(key)) {
    snprintf(err, err_size, "line %d: %s cannot be set in a config file",
             lineno, key);
    return -1;
  }
  if (vn == 0) {
    snprintf(err, err_size, "line %d: %s has no value", lineno, key);
    return -1;
  }
  e->key = key;
  e->value = value;
  e->line = lineno;
  return 0;
}

int svc_config_parse(char *text, size_t len, svc_config_entry **entries_out,
                     size_t *count_out, char *err, size_t err_size) {
  svc_config_entry *es = NULL;
  size_t n = 0, cap = 0;
  int lineno = 0;
  *entries_out = NULL;
  *count_out = 0;
  if (memchr(text, '\0', len) != NULL) {
    snprintf(err, err_size, "a NUL byte: not a text file");
    return -1;
  }
  for (char *p = text, *end = text + len;;) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (++lineno > SVC_CONFIG_LINES_MAX) {
      snprintf(err, err_size, "more than %d lines", SVC_CONFIG_LINES_MAX);
      goto fail;
    }
    if (n == cap) {
      size_t c = cap ? cap * 2 : 16;
      svc_config_entry *g = realloc(es, c * sizeof *g);
      if (g == NULL) {
        snprintf(err, err_size, "out of memory");
        goto fail;
      }
      es = g, cap = c;
    }
    int rc = parse_line(p, ln, lineno, &es[n], err, err_size);
    if (rc < 0)
      goto fail;
    for (size_t i = 0; rc == 0 && i < n; i++)
      if (strcmp(es[i].key, es[n].key) == 0) {
        snprintf(err, err_size, "line %d: %s was set on line %d already",
                 lineno, es[n].key, es[i].line);
        goto fail;
      }
    n += rc == 0;
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  *entries_out = es;
  *count_out = n;
  return 0;
fail:
  free(es);
  return -1;
}

/* Whether the command-line argument a takes a value (svc_next_flag's
 * rule: every "--" flag does except the informative ones). */
static int takes_value(const char *a) {
  return strncmp(a, "--", 2) == 0 && strcmp(a, "--help") != 0 &&
         strcmp(a, "--version") != 0;
}

/* The file's flags into a->argv[1..]; 0 or 2. */
static int load_file(const char *prog, svc_args *a) {
  char err[512];
  size_t len, n;
  a->text = svc_read_file(a->config_path, SVC_CONFIG_BYTES_MAX, &len);
  if (a->text == NULL) {
    fprintf(stderr, "%s: cannot read --config %s: %s\n", prog, a->config_path,
            strerror(errno ? errno : EFBIG));
    return 2;
  }
  if (svc_config_parse(a->text, len, &a->entries, &n, err, sizeof err)) {
    fprintf(stderr, "%s: --config %s: %s\n", prog, a->config_path, err);
    return 2;
  }
  a->entries_count = n;
  if ((a->flag_names = calloc(n ? n : 1, sizeof *a->flag_names)) == NULL)
    goto oom;
  for (size_t i = 0; i < n; i++) {
    size_t kn = strlen(a->entries[i].key);
    if ((a->flag_names[i] = malloc(kn + 3)) == NULL)
      goto oom;
    memcpy(a->flag_names[i], "--", 2);
    memcpy(a->flag_names[i] + 2, a->entries[i].key, kn + 1);
    a->argv[a->argc++] = a->flag_names[i];
    a->argv[a->argc++] = (char *)a->entries[i].value;
  }
  return 0;
oom:
  fprintf(stderr, "%s: out of memory\n", prog);
  return 2;
}

int svc_args_build(const char *prog, int argc, char **argv, svc_args *out) {
  memset(out, 0, sizeof *out);
  /* First pass: --config and --check-config, skipping flags' values. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--check-config") == 0) {
      out->check_config = 1;
    } else if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc)
        return svc_usage_error(prog, "--config needs a value");
      if (out->config_path)
        return svc_usage_error(prog, "--config given twice");
      out->config_path = argv[++i];
    } else if (takes_value(argv[i]) && i + 1 < argc) {
      i++;
    }
  }
  size_t cap = (size_t)argc + 2 * SVC_CONFIG_LINES_MAX + 1;
  if ((out->argv = calloc(cap, sizeof *out->argv)) == NULL) {
    fprintf(stderr, "%s: out of memory\n", prog);
    return 2;
  }
  out->argv[out->argc++] = argv[0];
  if (out->config_path && load_file(prog, out))
    return 2;
  out->file_end = out->argc;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--check-config") == 0)
      continue;
    if (strcmp(argv[i], "--config") == 0) {
      i++;
      continue;
    }
    out->argv[out->argc++] = argv[i];
    if (takes_value(argv[i]) && i + 1 < argc)
      out->argv[out->argc++] = argv[++i];
  }
  out->argv[out->argc] = NULL;
  g_args = out;
  return 0;
}

void svc_args_free(svc_args *a) {
  if (g_args == a)
    g_args = NULL;
  g_origin[0] = '\0';
  for (size_t i = 0; a->flag_names && i < a->entries_count; i++)
    free(a->flag_names[i]);
  free(a->flag_names);
  free(a->entries);
  free(a->text);
  free(a->argv);
  memset(a, 0, sizeof *a);
}

void svc_args_at(char *const *argv, int i) {
  g_origin[0] = '\0';
  if (g_args == NULL || argv != g_args->argv || i < 1 || i >= g_args->file_end)
    return;
  int line = g_args->entries[(i - 1) / 2].line;
  snprintf(g_origin, sizeof g_origin, "%s:%d: ", g_args->config_path, line);
}

void svc_args_done(void) { g_origin[0] = '\0'; }

const char *svc_args_origin(void) { return g_origin; }

int svc_check_data_dir(const char *dir, int read_only, char *err,
                       size_t err_size) {
  struct stat st;
  if (stat(dir, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      snprintf(err, err_size, "--data %s: not a directory", dir);
      return -1;
    }
    if (access(dir, read_only ? R_OK | X_OK : R_OK | W_OK | X_OK) != 0) {
      snprintf(err, err_size, "--data %s: %s", dir, strerror(errno));
      return -1;
    }
    return 0;
  }
  if (errno != ENOENT || read_only) {
    snprintf(err, err_size, "--data %s: %s", dir, strerror(errno));
    return -1;
  }
  char parent[4096];
  errno = 0;
  snprintf(parent, sizeof parent, "%s", dir);
  size_t n = strlen(parent);
  while (n > 1 && parent[n - 1] == '/')
    parent[--n] = '\0';
  char *slash = strrchr(parent, '/');
  if (slash == NULL)
    snprintf(parent, sizeof parent, ".");
  else
    slash[slash == parent] = '\0';
  if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode) ||
      access(parent, W_OK | X_OK) != 0) {
    snprintf(err, err_size,
             "--data %s does not exist and cannot be created in %s: %s", dir,
             parent, errno ? strerror(errno) : "not a directory");
    return -1;
  }
  return 0;
}
