/*
 * engine.h -- the engine layer's answer to the store's hooks
 * (store/dbint.h, es_engine_hooks): behaviour-segment rules loaded and
 * counted as the store loads tenants and acknowledges rows, and the
 * identity cache freed with its tenant.
 */
#ifndef ES_ENGINE_H
#define ES_ENGINE_H

#include "store/dbint.h"

extern const es_engine_hooks es__engine_hooks;

#endif
