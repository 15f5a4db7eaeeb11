/*
 * fuzz_ingest_keys.c -- fuzz target: es-ingestd's secrets documents
 * (cmd/ingest/keys.c): the write keys object (--keys, SIGHUP, PUT
 * /v1/admin/keys) and the admin tokens array (--admin-tokens).
 *
 * Input: byte 0 picks the parser (even: keys, odd: tokens); the rest,
 * NUL-terminated, is the document.
 *
 * Properties beyond "no crash, no leak":
 *  1. Accepted keys are sorted, each once, 1-ING_KEY_BYTES_MAX bytes, with
 *     a valid tenant id, and ing_keyset_find finds every one of them.
 *  2. Accepted tokens are 16-200 bytes each, at least one.
 *  3. A refusal leaves the output empty and a message that quotes no
 *     key, tenant or token of the input (it goes to logs and HTTP
 *     answers).
 */
#include <stdlib.h>
#include <string.h>

#include <yajl_tree.h>

#include "common/svc.h"
#include "fuzz_util.h"
#include "ingest/keys.h"

/* Every fixed text keys.c puts into a message: a secret may be a
 * substring of these and still not be "quoted". */
static const char fixed_text[] =
    "want a non-empty JSON object of \"writeKey\": \"tenant\": key # must "
    "be 1-1024 bytes and map to a tenant id of 1-64 [A-Za-z0-9_-] a write "
    "key appears twice out of memory want a non-empty JSON array of tokens "
    "of 16-200 bytes (or to {\"tenant\":id,\"primary\":bool,"
    "\"durability\":\"local\"|\"s3\"}) and key # name one tenant with "
    "different \"primary\" \"durability\"";

/* Property 3 for a refused document: no string of it (an object's keys
 * and values, an array's strings) of 12 bytes or more appears in the
 * message, unless keys.c's own text holds it.  (A document that is not
 * JSON has only yajl's first message line, which quotes nothing.) */
static void check_message(const char *doc, const char *err) {
  FUZZ_ASSERT(err[0] != '\0');
  yajl_val root = yajl_tree_parse(doc, NULL, 0);
  size_t n = YAJL_IS_OBJECT(root)  ? root->u.object.len
             : YAJL_IS_ARRAY(root) ? root->u.array.len
                                   : 0;
  for (size_t i = 0; i < n; i++) {
    const char *strs[2] = {NULL, NULL};
    yajl_val v = YAJL_IS_OBJECT(root) ? root->u.object.values[i]
                                      : root->u.array.values[i];
    if (YAJL_IS_OBJECT(root))
      strs[0] = root->u.object.keys[i];
    if (YAJL_IS_STRING(v))
      strs[1] = v->u.string;
    for (int k = 0; k < 2; k++)
      if (strs[k] && strlen(strs[k]) >= 12 && !strstr(fixed_text, strs[k]))
        FUZZ_ASSERT(strstr(err, strs[k]) == NULL);
  }
  yajl_tree_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  char *doc = malloc(size);
  memcpy(doc, data + 1, size - 1);
  doc[size - 1] = '\0';
  char err[512] = "";
  if ((data[0] & 1) == 0) {
    ing_keyset ks;
    if (ing_keys_parse(doc, &ks, err, sizeof err) == 0) {
      FUZZ_ASSERT(ks.count > 0);
      for (size_t i = 0; i < ks.count; i++) {
        size_t len = fuzz_touch(ks.keys[i].key);
        FUZZ_ASSERT(len >= 1 && len <= ING_KEY_BYTES_MAX);
        FUZZ_ASSERT(svc_tenant_ok(ks.keys[i].tenant));
        FUZZ_ASSERT(i == 0 || strcmp(ks.keys[i - 1].key, ks.keys[i].key) < 0);
        FUZZ_ASSERT(ing_keyset_find(&ks, ks.keys[i].key) == &ks.keys[i]);
      }
      ing_keyset_free(&ks);
    } else {
      FUZZ_ASSERT(ks.count == 0 && ks.keys == NULL);
      check_message(doc, err);
    }
  } else {
    char **tokens;
    size_t n;
    if (ing_tokens_parse(doc, &tokens, &n, err, sizeof err) == 0) {
      FUZZ_ASSERT(n > 0);
      for (size_t i = 0; i < n; i++) {
        size_t len = fuzz_touch(tokens[i]);
        FUZZ_ASSERT(len >= ING_ADMIN_TOKEN_BYTES_MIN &&
                    len <= ING_ADMIN_TOKEN_BYTES_MAX);
      }
      ing_tokens_free(tokens, n);
    } else {
      FUZZ_ASSERT(tokens == NULL && n == 0);
      check_message(doc, err);
    }
  }
  free(doc);
  return 0;
}
