/*
 * engine.c -- the hooks through which the store (lib/store/), which knows
 * nothing of the layer above it, reaches the rules and the identity
 * cache.  One table, passed to es__db_open by lib/api.c.
 */
#include "engine/engine.h"
#include "base/mem.h"
#include "engine/identity.h"
#include "engine/rules.h"

/* Every tenant object carries an (empty) rule list from birth, so the
 * writer and readers never meet a tenant without one. */
static int engine_tenant_init(es_tenant *t) {
  t->rules = es__calloc(1, sizeof(*t->rules));
  if (!t->rules)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&t->rules->save_mu, NULL);
  return ES_OK;
}

static void engine_tenant_free(es_tenant *t) {
  if (t->rules) {
    es__rules_free(t->rules);
    pthread_mutex_destroy(&t->rules->save_mu);
    es__free(t->rules);
    t->rules = NULL;
  }
  es__identity_free(t->id_cache);
  t->id_cache = NULL;
}

const es_engine_hooks es__engine_hooks = {
    .tenant_init = engine_tenant_init,
    .tenant_load = es__tenant_rules_load,
    .rows = es__tenant_rules_count,
    .tenant_save = es__tenant_rules_save,
    .tenant_free = engine_tenant_free,
};
