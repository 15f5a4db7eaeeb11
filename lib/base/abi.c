/*
 * abi.c -- see abi.h.
 */
#include <string.h>

#include "base/abi.h"

/* Copies an option struct over the library's defaults; see abi.h. */
int es__abi_options_in(const void *src, void *dst, size_t dst_size,
                       size_t min_size, const char *what) {
  size_t n;
  memcpy(&n, src, sizeof(n));
  if (n == 0)
    return ES_INVAL_BKPT("%s was not filled by %s_init (struct_size 0)", what,
                         what);
  if (n < min_size || n > ((size_t)1 << 20))
    return ES_INVAL_BKPT("%s.struct_size %zu is not a size of it", what, n);
  const unsigned char *p = src;
  for (size_t i = dst_size; i < n; i++)
    if (p[i] != 0)
      return ES_INVAL_BKPT("%s sets an option at byte %zu that this library "
                           "version (%d) does not know",
                           what, i, ES_VERSION_NUMBER);
  memcpy((unsigned char *)dst + sizeof(size_t),
         (const unsigned char *)src + sizeof(size_t),
         (n < dst_size ? n : dst_size) - sizeof(size_t));
  memcpy(dst, &dst_size, sizeof(dst_size));
  return ES_OK;
}
