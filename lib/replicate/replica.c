/*
 * replica.c -- the public face of replication: es_replica handles (an
 * object store), es_restore, and es_replica_s3_new, which parses
 * "s3://BUCKET/PREFIX" into the S3 client's configuration.
 */
#include <stdio.h>
#include <string.h>

#include "base/abi.h"
#include "base/event.h"
#include "base/io.h"
#include "base/mem.h"
#include "replicate/replicate.h"
#include "store/manifest.h"
#ifdef ES_HAVE_S3
#include "replicate/s3.h"
#endif

int es__replica_wrap(es_objstore *os, int owns, es_replica **out) {
  *out = NULL;
  es_replica *r = es__calloc(1, sizeof(*r));
  if (!r)
    return ES_NOMEM_BKPT();
  r->os = os;
  r->owns = owns;
  *out = r;
  return ES_OK;
}

void es_replica_free(es_replica *replica) {
  if (!replica)
    return;
  if (replica->owns)
    es__objstore_destroy(replica->os);
  es__free(replica);
}

void es_replica_config_init_sized(es_replica_config *cfg, size_t struct_size) {
  es_replica_config c;
  memset(&c, 0, sizeof(c));
  memset(cfg, 0, struct_size);
  memcpy(cfg, &c, struct_size < sizeof(c) ? struct_size : sizeof(c));
  cfg->struct_size = struct_size;
}

int es_replica_s3_new(const es_replica_config *cfg_in, es_replica **out) {
  if (!out)
    return ES_INVAL_BKPT("es_replica_s3_new: NULL out");
  *out = NULL;
  es_replica_config cfg;
  es_replica_config_init(&cfg);
  if (!cfg_in)
    return ES_INVAL_BKPT("es_replica_s3_new: NULL config");
  ES_TRY(es__abi_options_in(cfg_in, &cfg, sizeof(cfg), sizeof(cfg),
                            "es_replica_config"));
  if (!cfg.url || strncmp(cfg.url, "s3://", 5) != 0)
    return ES_INVAL_BKPT("replica URL \"%s\" is not s3://BUCKET[/PREFIX]",
                         cfg.url ? cfg.url : "(null)");
#ifdef ES_HAVE_S3
  char bucket[256], prefix[ES_OBJ_KEY_MAX + 2];
  const char *b = cfg.url + 5, *slash = strchr(b, '/');
  size_t blen = slash ? (size_t)(slash - b) : strlen(b);
  if (blen == 0 || blen >= sizeof(bucket))
    return ES_INVAL_BKPT("replica URL \"%s\": no bucket", cfg.url);
  memcpy(bucket, b, blen);
  bucket[blen] = '\0';
  prefix[0] = '\0';
  if (slash && slash[1]) { /* "PREFIX" is a folder: keys go under PREFIX/ */
    size_t plen = strlen(slash + 1);
    if (plen + 2 > sizeof(prefix))
      return ES_INVAL_BKPT("replica URL \"%s\": prefix too long", cfg.url);
    snprintf(prefix, sizeof(prefix), "%s%s", slash + 1,
             slash[plen] == '/' ? "" : "/");
  }
  es_s3_config s3;
  es__s3_config_init(&s3);
  s3.bucket = bucket;
  s3.key_prefix = prefix;
  s3.endpoint = cfg.endpoint;
  s3.region = cfg.region;
  s3.attempts_max = cfg.attempts_max;
  es_objstore *os = NULL;
  ES_TRY(es__s3_create(&s3, &os));
  int rc = es__replica_wrap(os, 1, out);
  if (rc < 0)
    es__objstore_destroy(os);
  return rc;
#else
  return ES_INVAL_BKPT("this library was built without libcurl: no S3");
#endif
}

int es_restore(es_replica *replica, const char *data_dir,
               const char *const *tenants, size_t ntenants,
               void (*progress)(void *ud, const es_restore_progress *p),
               void *ud) {
  return es__restore_vfs(replica, es__vfs_posix(), data_dir, tenants, ntenants,
                         progress, ud);
}

int es_replica_record_read(const char *data_dir, const char *tenant,
                           es_replica_record *out) {
  if (!data_dir || !tenant || !out)
    return ES_INVAL_BKPT("es_replica_record_read: NULL argument");
  memset(out, 0, sizeof(*out));
  ES_TRY(es__tenant_check(tenant));
  es_vfs *vfs = es__vfs_posix();
  char rel[ES_PATH_MAX], dir[ES_PATH_MAX], path[ES_PATH_MAX];
  snprintf(rel, sizeof(rel), "tenants/%s", tenant);
  ES_TRY(es__path_join(dir, sizeof(dir), data_dir, rel));
  ES_TRY(es__path_join(path, sizeof(path), dir, ES_REPLREC_NAME));
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(es__io_read_all(vfs, path, &buf, &len));
  es_replrec rec;
  int rc = es__replrec_decode(path, buf, len, &rec);
  es__free(buf);
  ES_TRY(rc);
  out->generation = rec.generation;
  out->identity = rec.identity_hash != 0;
  out->rules = rec.rules_hash != 0;
  for (size_t i = 0; i < rec.n; i++) {
    out->objects++;
    out->bytes += rec.e[i].bytes;
    out->superseded += rec.e[i].superseded_us != 0;
  }
  es__replrec_free(&rec);
  es_manifest m;
  rc = es__manifest_read(vfs, dir, &m);
  if (rc == ES_OK) {
    out->local_generation = m.generation;
    es__manifest_free(&m);
  }
  return rc;
}
