/*
 * s3.h -- the S3 implementation of es_objstore (s3.c, built when libcurl
 * and libcrypto are found), and the helpers it is made of that need
 * neither (s3util.c: SigV4-canonical encoding, retry policy; s3xml.c: the
 * response parser), kept apart so that unit and fuzz tests reach them
 * without a network.
 *
 * Configuration follows the AWS conventions; every field of es_s3_config
 * left NULL/0 takes the environment's value, then the default:
 *   access key     AWS_ACCESS_KEY_ID
 *   secret key     AWS_SECRET_ACCESS_KEY
 *   session token  AWS_SESSION_TOKEN (sent as x-amz-security-token)
 *   region         AWS_REGION, else us-east-1
 *   endpoint       AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else
 *                  https://s3.REGION.amazonaws.com
 * A custom endpoint is addressed path-style (ENDPOINT/BUCKET/KEY), AWS's
 * own virtual-host style (https://BUCKET.s3.REGION.amazonaws.com/KEY).
 */
#ifndef ES_S3_H
#define ES_S3_H

#include <stddef.h>
#include <stdint.h>

#include "replicate/objstore.h"

typedef struct es_s3_config {
  const char *bucket;     /* required */
  const char *key_prefix; /* prepended to every key, e.g. "prod/"; "" */
  const char *endpoint;   /* e.g. "http://127.0.0.1:9000" */
  const char *region;
  const char *access_key_id;
  const char *secret_access_key;
  const char *session_token;
  int path_style; /* -1 (default): path-style iff the endpoint is custom */
  long connect_timeout_ms;    /* default 5,000 */
  long request_timeout_ms;    /* one attempt, whole; default 120,000 */
  long low_speed_timeout_s;   /* abort below 1 KiB/s for this; 30 */
  unsigned attempts_max;      /* per request, first included; 6 */
  unsigned backoff_base_ms;   /* first retry waits up to this; 100 */
  unsigned backoff_max_ms;    /* cap on one wait; 10,000 */
  size_t multipart_threshold; /* puts above this are multipart; 16 MiB */
  size_t part_bytes;          /* multipart part size (>= 5 MiB on S3) */
  unsigned list_page_keys;    /* max-keys per ListObjectsV2 page; 1000 */
} es_s3_config;

/* Fills cfg with "unset" (NULL / 0 / path_style -1): es__s3_create takes
 * the environment's value or the default for each. */
void es__s3_config_init(es_s3_config *cfg);

/* Makes an S3 object store from cfg (copied; cfg's strings may be freed
 * afterwards).  ES_EINVAL (es_errdetail names the field) when the bucket or
 * the credentials are missing or a value is out of range; ES_ENOMEM;
 * ES_EREMOTE when libcurl cannot be initialised.  No request is sent. */
int es__s3_create(const es_s3_config *cfg, es_objstore **os_out) ES_MUST_CHECK;

/* ---- s3util.c: encoding and retry policy (no libcurl) ------------------ */

/* AWS UriEncode of s[0..n) appended to out (capacity cap, NUL-terminated):
 * A-Za-z0-9 - . _ ~ kept, '/' kept when keep_slash, every other byte %XX
 * with upper-case hex.  ES_EINVAL if it does not fit. */
int es__s3_uri_encode(char *out, size_t cap, const char *s, size_t n,
                      int keep_slash) ES_MUST_CHECK;

/* A canonical query string (SigV4: names and values UriEncoded, sorted by
 * name, "name=" for an empty value) from count name/value pairs
 * (values may be NULL = ""), written to out. */
int es__s3_query(char *out, size_t cap, const char *const *names,
                 const char *const *values, size_t count) ES_MUST_CHECK;

/* Whether an HTTP status (with the S3 error code from the body, or "") or
 * a libcurl failure (http_status 0, curl_transient set by the caller) is
 * worth another attempt: 5xx, 408, 429, 409 (a concurrent conditional
 * write), 400 RequestTimeout, SlowDown; never any other 4xx. */
int es__s3_retryable(long http_status, const char *s3_code);

/* The wait before attempt `attempt` (2 = the first retry): "full jitter",
 * uniformly random in [0, min(max_ms, base_ms * 2^(attempt-2))], from
 * rand64 (any uniformly random 64-bit number). */
unsigned es__s3_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms,
                           uint64_t rand64);

/* ---- s3xml.c: the response parser ------------------------------------- */

/* Called once per <Contents> of a ListObjectsV2 page with the decoded key.
 * A non-zero return stops the parse and is returned. */
typedef int (*es__s3xml_key_fn)(void *ud, const char *key,
                                const es_objinfo *info);

/* Parses a ListObjectsV2 result.  *truncated_out is 1 if <IsTruncated> is
 * true; then token (capacity token_cap) holds <NextContinuationToken>,
 * decoded.  ES_EREMOTE (with a detail) when the document is not a list
 * result or a field is malformed (a key too long, a size not a number, a
 * truncated page without a token). */
int es__s3xml_list(const char *xml, size_t len, es__s3xml_key_fn fn, void *ud,
                   int *truncated_out, char *token, size_t token_cap);

/* Copies the decoded text of the first element named tag (anywhere in the
 * document) into out.  ES_ENOTFOUND if there is none, ES_EREMOTE if it is
 * malformed or longer than cap - 1. */
int es__s3xml_text(const char *xml, size_t len, const char *tag, char *out,
                   size_t cap);

#endif
