/*
 * json.h -- writing JSON text into an es_buf.  Parsing uses yajl (Debian's
 * libyajl); writing is ours so every byte goes through es__malloc and
 * invalid UTF-8 in stored strings can never make invalid JSON.
 */
#ifndef ES_JSON_H
#define ES_JSON_H

#include "base/codec.h"

/* Appends s as a JSON string: quotes, backslashes and control characters
 * escaped, non-ASCII UTF-8 passed through, any byte that is not valid
 * UTF-8 replaced by U+FFFD. */
int es__json_put_str(es_buf *b, const char *s) ES_MUST_CHECK;

/* Whether s is valid UTF-8, i.e. written back unchanged by
 * es__json_put_str. */
int es__json_utf8_valid(const char *s);

#endif
