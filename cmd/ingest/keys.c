/*
 * keys.c -- parsing and checking es-ingestd's write keys and admin tokens
 * documents (keys.h).  A document is accepted whole or not at all: the
 * server swaps in a new set only after this said yes (setup.c), so a
 * mistyped file on SIGHUP or a bad PUT never leaves it half-applied.
 * Messages never quote a key or a token (they go to logs and to HTTP
 * answers); they name the member by its position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_tree.h>

#include "common/svc.h"
#include "keys.h"

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const ing_key_entry *)a)->key,
                ((const ing_key_entry *)b)->key);
}

void ing_keyset_free(ing_keyset *ks) {
  for (size_t i = 0; ks->keys && i < ks->count; i++)
    free(ks->keys[i].key);
  free(ks->keys);
  ks->keys = NULL;
  ks->count = 0;
}

const ing_key_entry *ing_keyset_find(const ing_keyset *ks, const char *key) {
  ing_key_entry k = {.key = (char *)key};
  if (ks->count == 0)
    return NULL;
  return bsearch(&k, ks->keys, ks->count, sizeof k, entry_cmp);
}

/* A member's value: "tenant", or {"tenant": "...", "primary": bool,
 * "durability": "local"|"s3"}.  The tenant id (NULL when malformed),
 * *primary and *durability (ES_DURABILITY_DEFAULT when not given). */
static const char *member_tenant(yajl_val v, int *primary, int *durability) {
  *primary = 0;
  *durability = ES_DURABILITY_DEFAULT;
  if (YAJL_IS_STRING(v))
    return v->u.string;
  if (!YAJL_IS_OBJECT(v))
    return NULL;
  const char *tenant = NULL;
  for (size_t i = 0; i < v->u.object.len; i++) {
    const char *k = v->u.object.keys[i];
    yajl_val x = v->u.object.values[i];
    if (strcmp(k, "tenant") == 0 && YAJL_IS_STRING(x))
      tenant = x->u.string;
    else if (strcmp(k, "primary") == 0 && (YAJL_IS_TRUE(x) || YAJL_IS_FALSE(x)))
      *primary = YAJL_IS_TRUE(x);
    else if (strcmp(k, "durability") == 0 && YAJL_IS_STRING(x) &&
             (strcmp(x->u.string, "local") == 0 ||
              strcmp(x->u.string, "s3") == 0))
      *durability = strcmp(x->u.string, "s3") == 0 ? ES_DURABILITY_S3
                                                   : ES_DURABILITY_LOCAL;
    else
      return NULL;
  }
  return tenant;
}

/* The members' checks; the error names the first fault. */
static int keys_check(yajl_val root, const char *yerr, char *err,
                      size_t err_size) {
  if (!YAJL_IS_OBJECT(root) || root->u.object.len == 0) {
    snprintf(err, err_size,
             "want a non-empty JSON object of \"writeKey\": \"tenant\"%s%.*s",
             root ? "" : ": ", (int)strcspn(yerr, "\n"), root ? "" : yerr);
    return -1;
  }
  for (size_t i = 0; i < root->u.object.len; i++) {
    const char *key = root->u.object.keys[i];
    int primary, primary_j, tier, tier_j;
    const char *tenant =
        member_tenant(root->u.object.values[i], &primary, &tier);
    size_t n = strlen(key);
    if (!tenant || !svc_tenant_ok(tenant) || n == 0 || n > ING_KEY_BYTES_MAX) {
      snprintf(err, err_size,
               "key #%zu must be 1-%d bytes and map to a tenant id of 1-64 "
               "[A-Za-z0-9_-] (or to {\"tenant\":id,\"primary\":bool,"
               "\"durability\":\"local\"|\"s3\"})",
               i + 1, ING_KEY_BYTES_MAX);
      return -1;
    }
    for (size_t j = 0; j < i; j++) { /* a tenant is in one phase */
      const char *other =
          member_tenant(root->u.object.values[j], &primary_j, &tier_j);
      if (strcmp(other, tenant) == 0 &&
          (primary_j != primary || tier_j != tier)) {
        snprintf(err, err_size,
                 "key #%zu and key #%zu name one tenant with different "
                 "\"%s\"",
                 j + 1, i + 1, primary_j != primary ? "primary" : "durability");
        return -1;
      }
    }
  }
  return 0;
}

int ing_keys_parse(const char *text, ing_keyset *out, char *err,
                   size_t err_size) {
  char yerr[256] = "";
  out->keys = NULL;
  out->count = 0;
  yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
  if (keys_check(root, yerr, err, err_size)) {
    yajl_tree_free(root);
    return -1;
  }
  size_t n = root->u.object.len;
  out->keys = calloc(n, sizeof *out->keys);
  for (size_t i = 0; out->keys && i < n; i++, out->count++) {
    snprintf(out->keys[i].tenant, sizeof out->keys[i].tenant, "%s",
             member_tenant(root->u.object.values[i], &out->keys[i].primary,
                           &out->keys[i].durability));
    if ((out->keys[i].key = strdup(root->u.object.keys[i])) == NULL)
      break;
  }
  yajl_tree_free(root);
  if (out->keys == NULL || out->count < n) {
    ing_keyset_free(out);
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  qsort(out->keys, n, sizeof *out->keys, entry_cmp);
  for (size_t i = 1; i < n; i++)
    if (strcmp(out->keys[i].key, out->keys[i - 1].key) == 0) {
      ing_keyset_free(out);
      snprintf(err, err_size, "a write key appears twice");
      return -1;
    }
  return 0;
}

void ing_tokens_free(char **tokens, size_t count) {
  for (size_t i = 0; tokens && i < count; i++)
    free(tokens[i]);
  free(tokens);
}

int ing_tokens_parse(const char *text, char ***tokens_out, size_t *count_out,
                     char *err, size_t err_size) {
  char yerr[256] = "";
  *tokens_out = NULL;
  *count_out = 0;
  yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
  size_t n = YAJL_IS_ARRAY(root) ? root->u.array.len : 0;
  char **tokens = n ? calloc(n, sizeof *tokens) : NULL;
  int bad = n == 0, oom = n > 0 && tokens == NULL;
  for (size_t i = 0; tokens && !bad && i < n; i++) {
    yajl_val v = root->u.array.values[i];
    size_t len = YAJL_IS_STRING(v) ? strlen(v->u.string) : 0;
    bad = len < ING_ADMIN_TOKEN_BYTES_MIN || len > ING_ADMIN_TOKEN_BYTES_MAX;
    if (!bad && (tokens[i] = strdup(v->u.string)) == NULL)
      bad = oom = 1;
  }
  yajl_tree_free(root);
  if (bad || oom) {
    ing_tokens_free(tokens, n);
    if (oom)
      snprintf(err, err_size, "out of memory");
    else
      snprintf(err, err_size,
               "want a non-empty JSON array of tokens of %d-%d bytes",
               ING_ADMIN_TOKEN_BYTES_MIN, ING_ADMIN_TOKEN_BYTES_MAX);
    return -1;
  }
  *tokens_out = tokens;
  *count_out = n;
  return 0;
}
