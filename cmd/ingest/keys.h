/*
 * keys.h -- es-ingestd's two secrets files, parsed and checked whole
 * (keys.c): the write keys (--keys, PUT /v1/admin/keys: a JSON object
 * "writeKey": "tenant") and the admin tokens (--admin-tokens: a JSON
 * array of strings).  Pure functions (no libuv, no server state), so that
 * a fuzz target (tests/fuzz/fuzz_ingest_keys.c) drives them alone;
 * setup.c applies a parsed set to the running server.
 */
#ifndef INGESTD_KEYS_H
#define INGESTD_KEYS_H

#include <stddef.h>

#include "eventstore.h"

#define ING_KEY_BYTES_MAX 1024 /* a Basic auth user (hconn's limit) */
#define ING_ADMIN_TOKEN_BYTES_MIN 16
#define ING_ADMIN_TOKEN_BYTES_MAX 200

typedef struct ing_key_entry {
  char *key; /* owned */
  char tenant[ES_TENANT_LEN_MAX + 1];
  int primary; /* {"tenant":..,"primary":true}: the migration routes the
                  tenant's SDK traffic to es-ingestd (docs/MIGRATION.md,
                  GET /v1/admin/cutover/nginx-map); 0 for the string form
                  and for "primary": false */
  int durability; /* "durability": "local" or "s3" (the tenant's tier,
                     es_tenant_durability_set), else ES_DURABILITY_DEFAULT
                     (the server's --durability) */
} ing_key_entry;

/* Write keys sorted by key, each once. */
typedef struct ing_keyset {
  ing_key_entry *keys;
  size_t count;
} ing_keyset;

/*
 * Parses a keys document (NUL-terminated text): a non-empty JSON object
 * whose every member maps a key of 1-ING_KEY_BYTES_MAX bytes to a tenant
 * id ([A-Za-z0-9_-]{1,64}), or to {"tenant": id, "primary": true|false,
 * "durability": "local"|"s3"} (primary: the migration's per-tenant
 * cut-over, only true puts the key in the proxy's map; durability: the
 * tenant's tier), no key twice, and all keys of a tenant alike.  0 and
 * *out filled (free it with ing_keyset_free), or -1 and err says what is wrong
 * without quoting any key (*out empty).
 */
int ing_keys_parse(const char *text, ing_keyset *out, char *err,
                   size_t err_size);
void ing_keyset_free(ing_keyset *ks);
/* The entry of key, or NULL (binary search). */
const ing_key_entry *ing_keyset_find(const ing_keyset *ks, const char *key);

/*
 * Parses an admin tokens document: a non-empty JSON array of strings of
 * ING_ADMIN_TOKEN_BYTES_MIN..MAX bytes.  0 and *tokens_out (owned: free
 * with ing_tokens_free) with *count_out, or -1 and err (no token quoted).
 */
int ing_tokens_parse(const char *text, char ***tokens_out, size_t *count_out,
                     char *err, size_t err_size);
void ing_tokens_free(char **tokens, size_t count);

#endif /* INGESTD_KEYS_H */
