/*
 * objstore.c -- what every es_objstore implementation shares: the key
 * rules (objstore.h invariant 5) and a NULL-tolerant destroy.
 */
#include <string.h>

#include "replicate/objstore.h"

/* Keys are what S3 accepts and what a URL path can carry once encoded:
 * 1..ES_OBJ_KEY_MAX bytes, no NUL (a C string cannot hold one anyway). */
int es__objstore_check_key(const char *key) {
  if (key == NULL)
    return ES_INVAL_BKPT("object key is NULL");
  size_t n = strlen(key);
  if (n == 0 || n > ES_OBJ_KEY_MAX)
    return ES_INVAL_BKPT("object key of %zu bytes (want 1..%d)", n,
                         ES_OBJ_KEY_MAX);
  return ES_OK;
}

/* Frees os through its own destroy method. */
void es__objstore_destroy(es_objstore *os) {
  if (os != NULL)
    os->destroy(os);
}
