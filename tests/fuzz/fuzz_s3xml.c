/*
 * fuzz_s3xml.c -- fuzz target: the S3 client's XML reader
 * (lib/replicate/s3xml.c), which reads what an S3 server -- or anything
 * answering in its place -- sends back.
 *
 * The input is read as a ListObjectsV2 page (es__s3xml_list) and for the
 * elements the client looks up by name (es__s3xml_text), from an exact-size
 * copy without a terminating NUL, so that ASan sees any read past the end.
 *
 * Properties beyond "no crash, no leak":
 *  1. Every listed key is 1..ES_OBJ_KEY_MAX bytes with no NUL inside; a
 *     truncated page comes with a non-empty continuation token.
 *  2. Text found for a tag fits its buffer (strlen < cap).
 *  3. Round trip: the keys, sizes and etags of an accepted page, written
 *     back as XML with every special character escaped, parse to the same
 *     keys, sizes and etags.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "replicate/s3.h"

#define FUZZ_KEYS_MAX 64

typedef struct page {
  char *keys[FUZZ_KEYS_MAX];
  es_objinfo infos[FUZZ_KEYS_MAX];
  int n;
} page;

static int on_key(void *ud, const char *key, const es_objinfo *info) {
  page *p = ud;
  size_t n = strlen(key);
  FUZZ_ASSERT(n >= 1 && n <= ES_OBJ_KEY_MAX);
  FUZZ_ASSERT(strlen(info->etag) < sizeof(info->etag));
  if (p->n == FUZZ_KEYS_MAX)
    return 1; /* enough: stop (a positive stop value) */
  p->keys[p->n] = strdup(key);
  FUZZ_ASSERT(p->keys[p->n] != NULL);
  p->infos[p->n++] = *info;
  return 0;
}

static void page_free(page *p) {
  for (int i = 0; i < p->n; i++)
    free(p->keys[i]);
  p->n = 0;
}

/* Appends s escaped as XML text. */
static size_t put_escaped(char *out, size_t o, const char *s) {
  for (; *s; s++) {
    const char *e = NULL;
    switch (*s) {
    case '&': e = "&amp;"; break;
    case '<': e = "&lt;"; break;
    case '>': e = "&gt;"; break;
    case '"': e = "&quot;"; break;
    case '\'': e = "&apos;"; break;
    }
    if (e) {
      memcpy(out + o, e, strlen(e));
      o += strlen(e);
    } else {
      out[o++] = *s;
    }
  }
  return o;
}

static void roundtrip(const page *p) {
  size_t cap = 256 + (size_t)p->n * (6 * (ES_OBJ_KEY_MAX + ES_OBJ_ETAG_MAX) +
                                     128);
  char *xml = malloc(cap);
  FUZZ_ASSERT(xml != NULL);
  size_t o = (size_t)sprintf(xml, "<ListBucketResult><IsTruncated>false"
                                  "</IsTruncated>");
  for (int i = 0; i < p->n; i++) {
    o += (size_t)sprintf(xml + o, "<Contents><Key>");
    o = put_escaped(xml, o, p->keys[i]);
    o += (size_t)sprintf(xml + o, "</Key><Size>%llu</Size><ETag>",
                         (unsigned long long)p->infos[i].size);
    o = put_escaped(xml, o, p->infos[i].etag);
    o += (size_t)sprintf(xml + o, "</ETag></Contents>");
  }
  o += (size_t)sprintf(xml + o, "</ListBucketResult>");
  page again = {0};
  int truncated = 1;
  char token[8];
  int rc = es__s3xml_list(xml, o, on_key, &again, &truncated, token,
                          sizeof(token));
  FUZZ_ASSERT(rc == ES_OK && truncated == 0);
  FUZZ_ASSERT(again.n == p->n);
  for (int i = 0; i < p->n; i++) {
    FUZZ_ASSERT(strcmp(again.keys[i], p->keys[i]) == 0);
    FUZZ_ASSERT(again.infos[i].size == p->infos[i].size);
    FUZZ_ASSERT(strcmp(again.infos[i].etag, p->infos[i].etag) == 0);
  }
  page_free(&again);
  free(xml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *doc = (char *)fuzz_dup(data, size); /* no NUL after the input */
  page p = {0};
  int truncated = 0;
  char token[1024];
  int rc = es__s3xml_list(doc, size, on_key, &p, &truncated, token,
                          sizeof(token));
  if (rc == ES_OK) {
    FUZZ_ASSERT(!truncated || (token[0] != '\0' && strlen(token) < 1024));
    roundtrip(&p);
  }
  page_free(&p);
  static const char *const tags[] = {"UploadId", "Code", "Message", "ETag",
                                     "Key", "NextContinuationToken"};
  for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
    char out[64];
    rc = es__s3xml_text(doc, size, tags[i], out, sizeof(out));
    FUZZ_ASSERT(rc == ES_OK || rc == ES_ENOTFOUND || rc == ES_EREMOTE);
    if (rc == ES_OK)
      FUZZ_ASSERT(strlen(out) < sizeof(out));
  }
  free(doc);
  return 0;
}
