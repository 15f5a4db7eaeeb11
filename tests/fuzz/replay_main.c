/*
 * replay_main.c -- runs a fuzz target over saved inputs, without
 * libFuzzer, so that the corpus is an ordinary regression test.
 *
 *   replay_<target> PATH...
 *
 * Each PATH is a file or a directory (its regular files, not recursive,
 * in name order so that runs are repeatable).  Every input is passed to
 * LLVMFuzzerTestOneInput once; a broken property aborts, which fails the
 * test, and under ASan/UBSan a memory error does too.  Finding no input
 * at all is a failure as well: a replay that tests nothing must not pass.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* Reads a whole file into a malloc'ed buffer; exits on failure. */
static uint8_t *replay_read(const char *path, size_t *size_out) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fprintf(stderr, "%s: out of memory\n", path);
      exit(2);
    }
    len += fread(buf + len, 1, cap - len, f);
    if (len < cap)
      break;
    cap *= 2;
    buf = realloc(buf, cap);
  }
  if (ferror(f)) {
    perror(path);
    exit(2);
  }
  fclose(f);
  *size_out = len;
  return buf;
}

/* Runs one input; the exact-size copy lets ASan see reads past its end. */
static void replay_one(const char *path) {
  size_t size = 0;
  uint8_t *buf = replay_read(path, &size);
  uint8_t *exact = malloc(size ? size : 1);
  if (!exact) {
    fprintf(stderr, "%s: out of memory\n", path);
    exit(2);
  }
  memcpy(exact, buf, size);
  free(buf);
  (void)LLVMFuzzerTestOneInput(exact, size);
  free(exact);
}

static int replay_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir, in name order; returns how many. */
static size_t replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    perror(dir);
    exit(2);
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      names = realloc(names, cap * sizeof(*names));
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *p = names ? malloc(len) : NULL;
    if (!p) {
      fprintf(stderr, "%s: out of memory\n", dir);
      exit(2);
    }
    snprintf(p, len, "%s/%s", dir, e->d_name);
    names[n++] = p;
  }
  closedir(d);
  if (n > 0)
    qsort(names, n, sizeof(*names), replay_cmp);
  size_t ran = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
      replay_one(names[i]);
      ran++;
    }
    free(names[i]);
  }
  free(names);
  return ran;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
    return 2;
  }
  size_t ran = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 2;
    }
    if (S_ISDIR(st.st_mode)) {
      ran += replay_dir(argv[i]);
    } else {
      replay_one(argv[i]);
      ran++;
    }
  }
  printf("%s: %zu input(s) replayed\n", argv[0], ran);
  return ran > 0 ? 0 : 1;
}
