/*
 * abi.h -- option structs that grow without breaking programs built
 * against an older header (eventstore.h, convention 9).
 *
 * A program fills an option struct with its _init macro, which records
 * the struct's size as the program was compiled (struct_size, the first
 * member).  The library copies what the program has over its own
 * defaults: a shorter struct (an older program) leaves the newer fields at
 * their defaults; a longer one (a newer program) is accepted only if every
 * byte past what this library knows is zero, i.e. the program set no
 * option this library cannot honour.
 */
#ifndef ES_ABI_H
#define ES_ABI_H

#include <stddef.h>

#include "base/status.h"

/* Copies the caller's struct `src` (its first member is its size_t
 * struct_size) over `dst`, which holds the library's defaults and is
 * dst_size bytes; `what` names the struct in errors.  ES_EINVAL when src
 * was not filled by its _init macro, is shorter than its first release,
 * or sets bytes this library does not know. */
int es__abi_options_in(const void *src, void *dst, size_t dst_size,
                       size_t min_size, const char *what) ES_MUST_CHECK;

#endif
