/*
 * fuzz_util.h -- what the fuzz targets share: the entry point's
 * declaration, a memfile that lives for the whole process, a way to read
 * every byte of a decoded string, a failure report for broken properties,
 * and checksum "fix-ups".
 *
 * Why fix-ups: every structure the library reads is guarded by an XXH3
 * checksum, and a fuzzer that mutates bytes almost never produces a
 * matching one, so it would only ever exercise the checksum comparison.
 * Each target therefore parses the input twice: as it is (what a damaged
 * disk gives), and with every checksum it can locate recomputed (what a
 * buggy or hostile writer gives), so that the code behind the checksums
 * is fuzzed too.  The fix-ups locate structures with their own bounds
 * checks; they never trust the input.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "base/io.h"

/* libFuzzer's entry point, defined by each target; replay_main.c calls it
 * too.  Returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process-wide memfile (created on first use), emptied of files. */
es_vfs *fuzz_vfs(void);

/* Aborts unless every memfile handle was closed: a leaked handle is a
 * library bug even when the sanitizers do not see it. */
void fuzz_check_handles(es_vfs *vfs, const char *where);

/* Reads every byte of s up to its NUL (NULL is fine), so that ASan
 * reports a string that is not terminated inside its buffer.  Returns the
 * length so that the compiler cannot drop the reads. */
size_t fuzz_touch(const char *s);

/* Reports a broken property (file:line and a message) and aborts, which
 * libFuzzer records as a crash with its input. */
#define FUZZ_FAIL(...) fuzz_fail(__FILE__, __LINE__, __VA_ARGS__)
#define FUZZ_ASSERT(cond)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      FUZZ_FAIL("property failed: %s", #cond);                                 \
  } while (0)
_Noreturn void fuzz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A malloc'ed copy of data (at least 1 byte); aborts when out of memory. */
uint8_t *fuzz_dup(const uint8_t *data, size_t size);

/* Recompute, in place, the checksums of a WAL file image (each frame's),
 * a segment image (each block's, then the footer's) or a MANIFEST/ESDB
 * image (the trailing one).  Each returns how many checksums it changed:
 * 0 means the fixed image equals the input and need not be parsed again. */
size_t fuzz_fix_wal(uint8_t *img, size_t size);
size_t fuzz_fix_segment(uint8_t *img, size_t size);
size_t fuzz_fix_trailing(uint8_t *img, size_t size);

#endif
