/*
 * s3.c -- es_objstore on Amazon S3 (or any S3-compatible server), over
 * libcurl with its built-in SigV4 signing.
 *
 * One request = one s3_call: method, canonical path, canonical query,
 * headers, body.  s3_request() sends it, retrying with backoff, and turns
 * the outcome into a status of objstore.h invariant 2.
 *
 * Workarounds for libcurl 7.88's SigV4 (Debian 12), each a way in which
 * S3 would otherwise refuse the signature (docs/REPLICATION.md):
 *  1. curl does not send x-amz-content-sha256, which S3 requires and signs:
 *     we compute the body's SHA-256 (libcrypto) and send the header, which
 *     curl then signs as it signs every header we add, and uses as the
 *     payload hash.
 *  2. curl signs the path as written in the URL: keys are UriEncoded here
 *     ('/' kept), so the written path is the canonical one.  Dot segments
 *     ("a/../b") are kept as they are (CURLOPT_PATH_AS_IS).
 *  3. curl signs the query as written, neither sorted nor encoded: queries
 *     are built canonical (es__s3_query: "uploads=", sorted, encoded).
 *  4. curl signs a header given as "Name:" (which it uses to remove a
 *     header) although it sends none: we never pass one.  The body goes as
 *     CURLOPT_POSTFIELDS (curl hashes and sends it), with an explicit
 *     Content-Type so that curl's form type is not used.
 *
 * Invariants:
 *  1. Every request carries x-amz-content-sha256 matching its body, every
 *     x-amz-* header it carries is signed, and no header is sent empty.
 *  2. A request is retried only when es__s3_retryable() or a transport
 *     failure says so, at most attempts_max times in all, waiting a full
 *     jitter backoff between attempts; the last failure is what returns.
 *  3. A multipart upload either completes or is aborted (best effort: an
 *     abort that fails leaves parts that a bucket lifecycle rule removes).
 *  4. Easy handles are pooled; a handle is used by one thread at a time and
 *     reset before reuse.
 *  5. libcurl and libcrypto are not linked: the first S3 store a process
 *     creates opens them (dlopen, once, never closed) and every call goes
 *     through the `s3_lib` table.  libcurl brings about 30 shared
 *     libraries (TLS, Kerberos, LDAP, ...); loading them cost every
 *     program that links libeventstore about 6 ms at start, S3 or not
 *     (docs/BENCHMARKS.md, first acknowledgement).  Without libcurl on the
 *     machine only creating an S3 store fails, with a clear error.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/mem.h"
#include "replicate/s3.h"

#define S3_URL_MAX (ES_OBJ_KEY_MAX * 3 + 2048)
#define S3_QUERY_MAX 2048
#define S3_ERRBODY_MAX (64 * 1024)
#define S3_POOL_MAX 16
#define S3_PARTS_MAX 10000

typedef struct s3 {
  es_objstore os;
  char *bucket, *key_prefix, *endpoint, *region;
  char *access_key, *secret_key, *session_token;
  char sigv4[128]; /* "aws:amz:REGION:s3" */
  int path_style;
  es_s3_config cfg; /* numbers; its strings are not used after create */
  pthread_mutex_t mu;
  CURL *pool[S3_POOL_MAX];
  int pool_n;
  uint64_t rng;
  atomic_int cancel; /* es_objstore.cancel: end requests now (es_close) */
} s3;

/* A growing byte buffer for response bodies. */
typedef struct s3_buf {
  uint8_t *p;
  size_t len, cap, limit;
  int over;
} s3_buf;

/* One request and its response. */
typedef struct s3_call {
  const char *method;
  const char *key;   /* without key_prefix; NULL: the bucket */
  const char *query; /* canonical, "" for none */
  const void *body;
  size_t body_len;
  const char *hdrs[4]; /* extra headers, "Name: value", NULL-terminated */
  int want_body;       /* keep a 2xx body (else only error bodies) */
  /* Response. */
  long status;
  s3_buf resp;
  es_objinfo info;
  uint64_t total_size; /* from Content-Range, for ranged gets */
  int attempts;
  int in_doubt; /* a mutation attempt failed without an answer */
} s3_call;

/* ---- libcurl and libcrypto, opened on first use (invariant 5) ---------- */

/* The sonames of the libraries the headers we build with belong to
 * (Debian 12: libcurl4, libssl3), then the unversioned development
 * links. */
static const char *const s3_curl_names[] = {"libcurl.so.4", "libcurl.so"};
static const char *const s3_crypto_names[] = {"libcrypto.so.3", "libcrypto.so"};

/* The functions used, typed from their declarations (typeof references
 * no symbol, so nothing is linked). */
static struct {
  __typeof__(curl_global_init) *global_init;
  __typeof__(curl_easy_init) *easy_init;
  __typeof__(curl_easy_reset) *easy_reset;
  __typeof__(curl_easy_cleanup) *easy_cleanup;
  __typeof__(curl_easy_setopt) *easy_setopt;
  __typeof__(curl_easy_perform) *easy_perform;
  __typeof__(curl_easy_getinfo) *easy_getinfo;
  __typeof__(curl_easy_strerror) *easy_strerror;
  __typeof__(curl_slist_append) *slist_append;
  __typeof__(curl_slist_free_all) *slist_free_all;
  __typeof__(EVP_Digest) *evp_digest;
  __typeof__(EVP_sha256) *evp_sha256;
} s3_lib;

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static char s3_load_error[256]; /* "" once loaded and initialised */

/* Opens the first of `names` that loads. */
static void *s3_open_lib(const char *const *names, size_t n) {
  void *h = NULL;
  for (size_t i = 0; i < n && !h; i++)
    h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    snprintf(s3_load_error, sizeof(s3_load_error),
             "s3: cannot load %s (%s); install Debian's libcurl4 and libssl3",
             names[0], why ? why : "not found");
  }
  return h;
}

/* Looks up one symbol into the function pointer at `slot` (copied as
 * bytes: POSIX guarantees dlsym's result converts to a function pointer);
 * returns 0, and says which, when it is missing. */
static int s3_sym(void *h, const char *name, void *slot) {
  void *p = dlsym(h, name);
  if (!p) {
    snprintf(s3_load_error, sizeof(s3_load_error),
             "s3: the loaded libcurl or libcrypto has no %s", name);
    return 0;
  }
  memcpy(slot, &p, sizeof(p));
  return 1;
}

static void s3_global_init(void) {
  void *curl = s3_open_lib(s3_curl_names, 2);
  void *crypto = curl ? s3_open_lib(s3_crypto_names, 2) : NULL;
  if (!curl || !crypto)
    return;
  struct {
    void *h;
    const char *name;
    void *slot;
  } syms[] = {
      {curl, "curl_global_init", &s3_lib.global_init},
      {curl, "curl_easy_init", &s3_lib.easy_init},
      {curl, "curl_easy_reset", &s3_lib.easy_reset},
      {curl, "curl_easy_cleanup", &s3_lib.easy_cleanup},
      {curl, "curl_easy_setopt", &s3_lib.easy_setopt},
      {curl, "curl_easy_perform", &s3_lib.easy_perform},
      {curl, "curl_easy_getinfo", &s3_lib.easy_getinfo},
      {curl, "curl_easy_strerror", &s3_lib.easy_strerror},
      {curl, "curl_slist_append", &s3_lib.slist_append},
      {curl, "curl_slist_free_all", &s3_lib.slist_free_all},
      {crypto, "EVP_Digest", &s3_lib.evp_digest},
      {crypto, "EVP_sha256", &s3_lib.evp_sha256},
  };
  for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
    if (!s3_sym(syms[i].h, syms[i].name, syms[i].slot))
      return;
  if (s3_lib.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(s3_load_error, sizeof(s3_load_error),
             "s3: curl_global_init failed");
    return;
  }
  s3_load_error[0] = '\0';
}

/* ---- small helpers ------------------------------------------------------ */

static int s3_sha256_hex(const void *buf, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (s3_lib.evp_digest(buf ? buf : "", len, md, &n, s3_lib.evp_sha256(),
                        NULL) != 1 ||
      n != 32)
    return ES_ERR(ES_EREMOTE, "s3: SHA-256 failed (libcrypto)");
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return ES_OK;
}

static size_t s3_on_body(char *data, size_t size, size_t n, void *ud) {
  s3_buf *b = ud;
  size_t len = size * n;
  if (b->len + len > b->limit) {
    b->over = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  if (es__grow((void **)&b->p, &b->cap, b->len + len + 1, 1) != ES_OK)
    return 0;
  memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = '\0';
  return len;
}

/* Case-insensitive "Name:" match at the start of a header line; returns
 * the trimmed value (copied into out) or NULL. */
static const char *s3_header(const char *line, size_t len, const char *name,
                             char *out, size_t cap) {
  size_t nl = strlen(name);
  if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
    return NULL;
  const char *v = line + nl + 1, *e = line + len;
  while (v < e && (*v == ' ' || *v == '\t'))
    v++;
  while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
    e--;
  size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
  memcpy(out, v, n);
  out[n] = '\0';
  return out;
}

static size_t s3_on_header(char *data, size_t size, size_t n, void *ud) {
  s3_call *c = ud;
  size_t len = size * n;
  char v[128];
  if (s3_header(data, len, "ETag", c->info.etag, sizeof(c->info.etag)))
    return len;
  if (s3_header(data, len, "Content-Length", v, sizeof(v)))
    c->info.size = strtoull(v, NULL, 10);
  else if (s3_header(data, len, "Content-Range", v, sizeof(v))) {
    const char *slash = strchr(v, '/');
    if (slash && slash[1] != '*')
      c->total_size = strtoull(slash + 1, NULL, 10);
  }
  return len;
}

static CURL *s3_handle_get(s3 *s) {
  CURL *h = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->pool_n > 0)
    h = s->pool[--s->pool_n];
  pthread_mutex_unlock(&s->mu);
  if (h != NULL)
    s3_lib.easy_reset(h);
  else
    h = s3_lib.easy_init();
  return h;
}

static void s3_handle_put(s3 *s, CURL *h) {
  pthread_mutex_lock(&s->mu);
  if (s->pool_n < S3_POOL_MAX) {
    s->pool[s->pool_n++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&s->mu);
  if (h != NULL)
    s3_lib.easy_cleanup(h);
}

static uint64_t s3_rand(s3 *s) {
  pthread_mutex_lock(&s->mu);
  uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
  pthread_mutex_unlock(&s->mu);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Sleeps ms, in slices of 50 ms, ending early once cancelled. */
static void s3_sleep_ms(s3 *s, unsigned ms) {
  while (ms > 0 && !atomic_load(&s->cancel)) {
    unsigned n = ms < 50 ? ms : 50;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)n * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
      ;
    ms -= n;
  }
}

/* libcurl's progress callback (at least once a second): a non-zero
 * return aborts the transfer, which is how a cancel ends it. */
static int s3_on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                          curl_off_t un) {
  (void)dt, (void)dn, (void)ut, (void)un;
  return atomic_load(&((s3 *)ud)->cancel) != 0;
}

/* The URL of a call: endpoint, bucket (path- or host-style), encoded key,
 * canonical query. */
static int s3_url(s3 *s, const s3_call *c, char *url, size_t cap) {
  const char *ep = s->endpoint;
  const char *host = strstr(ep, "://");
  host = host ? host + 3 : ep;
  size_t scheme_len = (size_t)(host - ep);
  int n;
  if (s->path_style)
    n = snprintf(url, cap, "%s/%s/", ep, s->bucket);
  else
    n = snprintf(url, cap, "%.*s%s.%s/", (int)scheme_len, ep, s->bucket, host);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("s3: endpoint URL too long");
  if (c->key != NULL) {
    ES_TRY(
        es__s3_uri_encode(url, cap, s->key_prefix, strlen(s->key_prefix), 1));
    ES_TRY(es__s3_uri_encode(url, cap, c->key, strlen(c->key), 1));
  }
  if (c->query[0]) {
    size_t l = strlen(url);
    if (l + strlen(c->query) + 2 > cap)
      return ES_INVAL_BKPT("s3: URL too long");
    url[l] = '?';
    strcpy(url + l + 1, c->query);
  }
  return ES_OK;
}

/* ---- one attempt, and the retry loop ------------------------------------ */

/* Sends one attempt.  Returns the CURLcode; c->status is the HTTP status
 * (0 without an answer). */
static CURLcode s3_attempt(s3 *s, s3_call *c, const char *url,
                           struct curl_slist *hdrs) {
  CURL *h = s3_handle_get(s);
  if (h == NULL)
    return CURLE_OUT_OF_MEMORY;
  c->resp.len = 0;
  c->resp.over = 0;
  c->info.etag[0] = '\0';
  c->info.size = 0;
  c->total_size = 0;
  c->status = 0;
  s3_lib.easy_setopt(h, CURLOPT_URL, url);
  s3_lib.easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  s3_lib.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  s3_lib.easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
  s3_lib.easy_setopt(h, CURLOPT_USERNAME, s->access_key);
  s3_lib.easy_setopt(h, CURLOPT_PASSWORD, s->secret_key);
  s3_lib.easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  s3_lib.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->cfg.connect_timeout_ms);
  s3_lib.easy_setopt(h, CURLOPT_TIMEOUT_MS, s->cfg.request_timeout_ms);
  s3_lib.easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  s3_lib.easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->cfg.low_speed_timeout_s);
  s3_lib.easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_on_body);
  s3_lib.easy_setopt(h, CURLOPT_WRITEDATA, &c->resp);
  s3_lib.easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_on_header);
  s3_lib.easy_setopt(h, CURLOPT_HEADERDATA, c);
  s3_lib.easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  s3_lib.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s3_on_progress);
  s3_lib.easy_setopt(h, CURLOPT_XFERINFODATA, s);
  if (strcmp(c->method, "HEAD") == 0) {
    s3_lib.easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(c->method, "GET") != 0) {
    s3_lib.easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    if (strcmp(c->method, "DELETE") != 0) {
      s3_lib.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)c->body_len);
      s3_lib.easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
    }
  }
  CURLcode cc = s3_lib.easy_perform(h);
  s3_lib.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
  s3_handle_put(s, h);
  return cc;
}

/* Whether a transport failure may pass on another attempt. */
static int s3_curl_transient(CURLcode cc) {
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return 1;
  default:
    return 0;
  }
}

static int s3_mutation(const s3_call *c) {
  return strcmp(c->method, "GET") != 0 && strcmp(c->method, "HEAD") != 0;
}

/* Maps a final HTTP answer to a status. */
static int s3_http_status(const s3_call *c, const char *code, const char *msg) {
  const char *k = c->key ? c->key : "(bucket)";
  long st = c->status;
  if (st == 404)
    return ES_ERR(ES_ENOTFOUND, "s3: %s %s: 404 %s", c->method, k, code);
  if (st == 412)
    return ES_ERR(ES_ECONFLICT, "s3: %s %s: precondition failed%s", c->method,
                  k,
                  c->in_doubt ? " (after an attempt in doubt: it may "
                                "have been ours)"
                              : "");
  if (st == 416)
    return ES_ERR(ES_EINVAL, "s3: %s %s: range not satisfiable", c->method, k);
  if (es__s3_retryable(st, code))
    return ES_ERR(ES_EUNAVAIL, "s3: %s %s: HTTP %ld %s %s, %d attempts",
                  c->method, k, st, code, msg, c->attempts);
  return ES_ERR(ES_EREMOTE, "s3: %s %s: HTTP %ld %s %s", c->method, k, st, code,
                msg);
}

/* Sends c, retrying per invariant 2; fills its response. */
static int s3_request(s3 *s, s3_call *c) {
  char url[S3_URL_MAX], sha[65], sha_hdr[96], token_hdr[2200];
  char code[64], msg[256];
  struct curl_slist *hdrs = NULL, *t;
  int rc = ES_OK;
  url[0] = '\0';
  ES_TRY(s3_url(s, c, url, sizeof(url)));
  ES_TRY(s3_sha256_hex(c->body, c->body_len, sha));
  snprintf(sha_hdr, sizeof(sha_hdr), "x-amz-content-sha256: %s", sha);
  if ((t = s3_lib.slist_append(hdrs, sha_hdr)) == NULL)
    goto nomem;
  hdrs = t;
  if (s->session_token[0]) {
    snprintf(token_hdr, sizeof(token_hdr), "x-amz-security-token: %s",
             s->session_token);
    if ((t = s3_lib.slist_append(hdrs, token_hdr)) == NULL)
      goto nomem;
    hdrs = t;
  }
  if (s3_mutation(c) && strcmp(c->method, "DELETE") != 0) {
    if ((t = s3_lib.slist_append(hdrs, "Content-Type: application/octet-"
                                       "stream")) == NULL)
      goto nomem;
    hdrs = t;
  }
  for (int i = 0; i < 4 && c->hdrs[i]; i++) {
    if ((t = s3_lib.slist_append(hdrs, c->hdrs[i])) == NULL)
      goto nomem;
    hdrs = t;
  }
  c->resp.limit = c->want_body ? SIZE_MAX : S3_ERRBODY_MAX;
  for (c->attempts = 1;; c->attempts++) {
    CURLcode cc = s3_attempt(s, c, url, hdrs);
    code[0] = msg[0] = '\0';
    if (cc == CURLE_OK && c->status >= 200 && c->status < 300) {
      rc = ES_OK;
      break;
    }
    if (cc == CURLE_OUT_OF_MEMORY ||
        (cc == CURLE_WRITE_ERROR && !c->resp.over)) {
      rc = ES_NOMEM_BKPT();
      break;
    }
    if (cc == CURLE_OK && c->resp.len > 0) {
      if (es__s3xml_text((char *)c->resp.p, c->resp.len, "Code", code,
                         sizeof(code)) != ES_OK)
        code[0] = '\0';
      if (es__s3xml_text((char *)c->resp.p, c->resp.len, "Message", msg,
                         sizeof(msg)) != ES_OK)
        msg[0] = '\0';
    }
    int again = cc == CURLE_OK ? es__s3_retryable(c->status, code)
                               : s3_curl_transient(cc);
    /* Without an answer, or with a 5xx, a mutation may have happened. */
    if (s3_mutation(c) && (cc != CURLE_OK || c->status >= 500))
      c->in_doubt = 1;
    if (atomic_load(&s->cancel)) {
      rc = ES_ERR(ES_EUNAVAIL, "s3: %s %s: cancelled (the store is closing)",
                  c->method, c->key ? c->key : "(bucket)");
      break;
    }
    if (!again || c->attempts >= (int)s->cfg.attempts_max) {
      if (cc == CURLE_OK)
        rc = s3_http_status(c, code, msg);
      else
        rc = ES_ERR(again ? ES_EUNAVAIL : ES_EREMOTE,
                    "s3: %s %s: %s, %d attempts", c->method,
                    c->key ? c->key : "(bucket)", s3_lib.easy_strerror(cc),
                    c->attempts);
      break;
    }
    s3_sleep_ms(s, es__s3_backoff_ms((unsigned)c->attempts + 1,
                                     s->cfg.backoff_base_ms,
                                     s->cfg.backoff_max_ms, s3_rand(s)));
  }
  s3_lib.slist_free_all(hdrs);
  return rc;
nomem:
  s3_lib.slist_free_all(hdrs);
  return ES_NOMEM_BKPT();
}

static void s3_call_free(s3_call *c) {
  es__free(c->resp.p);
  c->resp.p = NULL;
}

/* ---- the operations ----------------------------------------------------- */

static int s3_cond_header(int cond, const char *if_etag, char *buf, size_t cap,
                          const char **hdr) {
  *hdr = NULL;
  if (cond == ES_OBJ_PUT_IF_ABSENT)
    *hdr = "If-None-Match: *";
  else if (cond == ES_OBJ_PUT_IF_MATCH) {
    if (if_etag == NULL || !*if_etag || strlen(if_etag) >= ES_OBJ_ETAG_MAX ||
        strpbrk(if_etag, "\r\n"))
      return ES_INVAL_BKPT("s3: If-Match put without a valid etag");
    snprintf(buf, cap, "If-Match: %s", if_etag);
    *hdr = buf;
  } else if (cond != ES_OBJ_PUT_ALWAYS)
    return ES_INVAL_BKPT("s3: unknown put condition %d", cond);
  return ES_OK;
}

/* Aborts a multipart upload (best effort, invariant 3). */
static void s3_mpu_abort(s3 *s, const char *key, const char *upload_id) {
  char query[S3_QUERY_MAX];
  const char *n[] = {"uploadId"}, *v[] = {upload_id};
  if (es__s3_query(query, sizeof(query), n, v, 1) != ES_OK)
    return;
  s3_call c = {.method = "DELETE", .key = key, .query = query};
  (void)s3_request(s, &c);
  s3_call_free(&c);
}

/* Uploads the parts and completes; *xml is the CompleteMultipartUpload
 * body being built (owned by the caller). */
static int s3_mpu_parts(s3 *s, const char *key, const uint8_t *buf, size_t len,
                        const char *upload_id, const char *cond,
                        es_objinfo *info_out) {
  size_t parts = (len + s->cfg.part_bytes - 1) / s->cfg.part_bytes;
  size_t cap = 128 + parts * (64 + ES_OBJ_ETAG_MAX * 6);
  char *xml = es__malloc(cap);
  char query[S3_QUERY_MAX], num[24];
  int rc = ES_OK;
  if (xml == NULL)
    return ES_NOMEM_BKPT();
  size_t o = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
  for (size_t i = 0; i < parts && rc == ES_OK; i++) {
    size_t off = i * s->cfg.part_bytes;
    size_t n = len - off < s->cfg.part_bytes ? len - off : s->cfg.part_bytes;
    snprintf(num, sizeof(num), "%zu", i + 1);
    const char *qn[] = {"partNumber", "uploadId"}, *qv[] = {num, upload_id};
    rc = es__s3_query(query, sizeof(query), qn, qv, 2);
    if (rc != ES_OK)
      break;
    s3_call c = {.method = "PUT",
                 .key = key,
                 .query = query,
                 .body = buf + off,
                 .body_len = n};
    rc = s3_request(s, &c);
    if (rc == ES_OK && (c.info.etag[0] == '\0' || strpbrk(c.info.etag, "<&")))
      rc = ES_ERR(ES_EREMOTE, "s3: part %zu of %s: no usable ETag", i + 1, key);
    if (rc == ES_OK)
      o += (size_t)snprintf(xml + o, cap - o,
                            "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag>"
                            "</Part>",
                            i + 1, c.info.etag);
    s3_call_free(&c);
  }
  if (rc == ES_OK) {
    o += (size_t)snprintf(xml + o, cap - o, "</CompleteMultipartUpload>");
    const char *qn[] = {"uploadId"}, *qv[] = {upload_id};
    rc = es__s3_query(query, sizeof(query), qn, qv, 1);
    s3_call c = {.method = "POST",
                 .key = key,
                 .query = query,
                 .body = xml,
                 .body_len = o,
                 .hdrs = {cond},
                 .want_body = 1};
    if (rc == ES_OK)
      rc = s3_request(s, &c);
    /* S3 may answer 200 and report the failure in the body. */
    char code[64];
    if (rc == ES_OK && es__s3xml_text((char *)c.resp.p, c.resp.len, "Code",
                                      code, sizeof(code)) == ES_OK)
      rc = ES_ERR(es__s3_retryable(0, code) ? ES_EUNAVAIL : ES_EREMOTE,
                  "s3: completing the upload of %s: %s", key, code);
    if (rc == ES_OK && info_out != NULL) {
      info_out->size = len;
      if (es__s3xml_text((char *)c.resp.p, c.resp.len, "ETag", info_out->etag,
                         sizeof(info_out->etag)) != ES_OK)
        info_out->etag[0] = '\0';
    }
    s3_call_free(&c);
  }
  es__free(xml);
  return rc;
}

/* A put above the threshold: create, parts, complete; abort on failure. */
static int s3_put_multipart(s3 *s, const char *key, const uint8_t *buf,
                            size_t len, const char *cond,
                            es_objinfo *info_out) {
  if ((len + s->cfg.part_bytes - 1) / s->cfg.part_bytes > S3_PARTS_MAX)
    return ES_INVAL_BKPT("s3: %s needs more than %d parts", key, S3_PARTS_MAX);
  char upload_id[1024], query[64];
  const char *qn[] = {"uploads"};
  ES_TRY(es__s3_query(query, sizeof(query), qn, NULL, 1));
  s3_call c = {.method = "POST", .key = key, .query = query, .want_body = 1};
  int rc = s3_request(s, &c);
  if (rc == ES_OK && es__s3xml_text((char *)c.resp.p, c.resp.len, "UploadId",
                                    upload_id, sizeof(upload_id)) != ES_OK)
    rc = ES_ERR(ES_EREMOTE, "s3: multipart upload of %s: no UploadId", key);
  s3_call_free(&c);
  if (rc != ES_OK)
    return rc;
  rc = s3_mpu_parts(s, key, buf, len, upload_id, cond, info_out);
  if (rc != ES_OK)
    s3_mpu_abort(s, key, upload_id);
  return rc;
}

static int s3_put(es_objstore *os, const char *key, const void *buf, size_t len,
                  int cond, const char *if_etag, es_objinfo *info_out) {
  s3 *s = os->ctx;
  char cond_buf[ES_OBJ_ETAG_MAX + 16];
  const char *cond_hdr;
  ES_TRY(es__objstore_check_key(key));
  if (buf == NULL && len > 0)
    return ES_INVAL_BKPT("s3: put of %s without a buffer", key);
  ES_TRY(s3_cond_header(cond, if_etag, cond_buf, sizeof(cond_buf), &cond_hdr));
  if (len > s->cfg.multipart_threshold)
    return s3_put_multipart(s, key, buf, len, cond_hdr, info_out);
  s3_call c = {.method = "PUT",
               .key = key,
               .query = "",
               .body = buf,
               .body_len = len,
               .hdrs = {cond_hdr}};
  int rc = s3_request(s, &c);
  /* If-Match on a missing key: S3 answers 404; the contract says conflict. */
  if (rc == ES_ENOTFOUND && cond == ES_OBJ_PUT_IF_MATCH)
    rc = ES_ERR(ES_ECONFLICT, "s3: %s does not exist (If-Match put)", key);
  if (rc == ES_OK && info_out != NULL) {
    info_out->size = len;
    memcpy(info_out->etag, c.info.etag, sizeof(info_out->etag));
  }
  s3_call_free(&c);
  return rc;
}

static int s3_head(es_objstore *os, const char *key, es_objinfo *info_out) {
  s3 *s = os->ctx;
  ES_TRY(es__objstore_check_key(key));
  if (info_out == NULL)
    return ES_INVAL_BKPT("s3: head without an output");
  s3_call c = {.method = "HEAD", .key = key, .query = ""};
  int rc = s3_request(s, &c);
  if (rc == ES_OK)
    *info_out = c.info;
  s3_call_free(&c);
  return rc;
}

static int s3_get(es_objstore *os, const char *key, uint64_t offset,
                  uint64_t len, uint8_t **buf_out, size_t *len_out,
                  es_objinfo *info_out) {
  s3 *s = os->ctx;
  char range[80];
  ES_TRY(es__objstore_check_key(key));
  if (buf_out == NULL || len_out == NULL)
    return ES_INVAL_BKPT("s3: get without an output");
  *buf_out = NULL;
  *len_out = 0;
  if (len == 0) { /* nothing to read: still say whether it exists */
    es_objinfo info;
    ES_TRY(s3_head(os, key, &info));
    if (offset > info.size)
      return ES_INVAL_BKPT("s3: offset past the end of %s", key);
    if (info_out)
      *info_out = info;
    return ES_OK;
  }
  int ranged = offset > 0 || len != ES_OBJ_TO_END;
  if (ranged && (len == ES_OBJ_TO_END || offset + len < offset))
    snprintf(range, sizeof(range), "Range: bytes=%llu-",
             (unsigned long long)offset);
  else if (ranged)
    snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
             (unsigned long long)offset,
             (unsigned long long)(offset + len - 1));
  s3_call c = {.method = "GET",
               .key = key,
               .query = "",
               .hdrs = {ranged ? range : NULL},
               .want_body = 1};
  int rc = s3_request(s, &c);
  if (rc == ES_EINVAL) { /* 416: offset at or past the end */
    s3_call_free(&c);
    es_objinfo info;
    ES_TRY(s3_head(os, key, &info));
    if (offset != info.size)
      return ES_INVAL_BKPT("s3: offset %llu past the end of %s (%llu bytes)",
                           (unsigned long long)offset, key,
                           (unsigned long long)info.size);
    if (info_out)
      *info_out = info;
    return ES_OK;
  }
  if (rc == ES_OK && c.status == 200 && ranged) {
    /* The server ignored the range: cut it here. */
    uint64_t n = c.resp.len > offset ? c.resp.len - offset : 0;
    if (len < n)
      n = len;
    memmove(c.resp.p, c.resp.p + (offset < c.resp.len ? offset : 0), n);
    c.total_size = c.resp.len;
    c.resp.len = n;
  }
  if (rc == ES_OK) {
    if (info_out) {
      *info_out = c.info;
      info_out->size = c.status == 206 || ranged ? c.total_size : c.resp.len;
    }
    *len_out = c.resp.len;
    if (c.resp.len > 0) {
      *buf_out = c.resp.p;
      c.resp.p = NULL;
    }
  }
  s3_call_free(&c);
  return rc;
}

static int s3_del(es_objstore *os, const char *key) {
  s3 *s = os->ctx;
  ES_TRY(es__objstore_check_key(key));
  s3_call c = {.method = "DELETE", .key = key, .query = ""};
  int rc = s3_request(s, &c);
  s3_call_free(&c);
  if (rc == ES_ENOTFOUND) /* some servers answer 404: deleted is deleted */
    rc = ES_OK;
  return rc;
}

/* Strips key_prefix from listed keys before the caller's callback. */
typedef struct s3_list_ctx {
  s3 *s;
  es_objlist_fn fn;
  void *ud;
  size_t strip;
  char last[ES_OBJ_KEY_MAX + 1];
} s3_list_ctx;

static int s3_list_one(void *ud, const char *key, const es_objinfo *info) {
  s3_list_ctx *l = ud;
  if (strncmp(key, l->s->key_prefix, l->strip) != 0 || key[l->strip] == '\0')
    return ES_ERR(ES_EREMOTE, "s3: listed key %s is outside the prefix", key);
  if (l->last[0] && strcmp(key, l->last) <= 0)
    return ES_ERR(ES_EREMOTE, "s3: listed keys out of order at %s", key);
  snprintf(l->last, sizeof(l->last), "%s", key);
  return l->fn(l->ud, key + l->strip, info);
}

static int s3_list(es_objstore *os, const char *prefix, const char *start_after,
                   es_objlist_fn fn, void *ud) {
  s3 *s = os->ctx;
  if (prefix == NULL || fn == NULL)
    return ES_INVAL_BKPT("s3: list without prefix or callback");
  char full[2 * ES_OBJ_KEY_MAX + 2], after[2 * ES_OBJ_KEY_MAX + 2];
  char max_keys[16], query[S3_QUERY_MAX], token[1024];
  int n = snprintf(full, sizeof(full), "%s%s", s->key_prefix, prefix);
  int na = snprintf(after, sizeof(after), "%s%s", s->key_prefix,
                    start_after ? start_after : "");
  if (n < 0 || (size_t)n >= sizeof(full) || na < 0 ||
      (size_t)na >= sizeof(after))
    return ES_INVAL_BKPT("s3: list prefix or start-after too long");
  snprintf(max_keys, sizeof(max_keys), "%u", s->cfg.list_page_keys);
  s3_list_ctx l = {.s = s, .fn = fn, .ud = ud, .strip = strlen(s->key_prefix)};
  token[0] = '\0';
  for (int truncated = 1, rc; truncated;) {
    /* start-after on the first page; the token carries on from there */
    int from = !token[0] && start_after && start_after[0];
    const char *qn[] = {"list-type", "max-keys", "prefix",
                        from ? "start-after" : "continuation-token"};
    const char *qv[] = {"2", max_keys, full, from ? after : token};
    ES_TRY(
        es__s3_query(query, sizeof(query), qn, qv, token[0] || from ? 4 : 3));
    s3_call c = {.method = "GET", .key = NULL, .query = query, .want_body = 1};
    rc = s3_request(s, &c);
    if (rc == ES_OK)
      rc = es__s3xml_list((char *)c.resp.p, c.resp.len, s3_list_one, &l,
                          &truncated, token, sizeof(token));
    s3_call_free(&c);
    if (rc != ES_OK)
      return rc;
  }
  return ES_OK;
}

/* es_objstore.cancel: see objstore.h. */
static void s3_cancel(es_objstore *os, int on) {
  atomic_store(&((s3 *)os->ctx)->cancel, on);
}

static void s3_destroy(es_objstore *os) {
  s3 *s = os->ctx;
  for (int i = 0; i < s->pool_n; i++)
    s3_lib.easy_cleanup(s->pool[i]);
  es__free(s->bucket);
  es__free(s->key_prefix);
  es__free(s->endpoint);
  es__free(s->region);
  es__free(s->access_key);
  es__free(s->secret_key);
  es__free(s->session_token);
  pthread_mutex_destroy(&s->mu);
  es__free(s);
}

/* ---- configuration ------------------------------------------------------ */

/* Leaves every field unset (see s3.h). */
void es__s3_config_init(es_s3_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->path_style = -1;
}

/* The first non-empty of a, the environment variables env1 and env2, and
 * dflt, copied. */
static char *s3_pick(const char *a, const char *env1, const char *env2,
                     const char *dflt) {
  const char *v = a;
  if ((v == NULL || !*v) && env1)
    v = getenv(env1);
  if ((v == NULL || !*v) && env2)
    v = getenv(env2);
  if (v == NULL || !*v)
    v = dflt;
  return es__strdup(v ? v : "");
}

static int s3_config_numbers(es_s3_config *c) {
  if (c->connect_timeout_ms <= 0)
    c->connect_timeout_ms = 5000;
  if (c->request_timeout_ms <= 0)
    c->request_timeout_ms = 120000;
  if (c->low_speed_timeout_s <= 0)
    c->low_speed_timeout_s = 30;
  if (c->attempts_max == 0)
    c->attempts_max = 6;
  if (c->backoff_base_ms == 0)
    c->backoff_base_ms = 100;
  if (c->backoff_max_ms == 0)
    c->backoff_max_ms = 10000;
  if (c->part_bytes == 0)
    c->part_bytes = 16u << 20;
  if (c->multipart_threshold == 0)
    c->multipart_threshold = 16u << 20;
  if (c->list_page_keys == 0 || c->list_page_keys > 1000)
    c->list_page_keys = 1000;
  if (c->attempts_max > 100 || c->backoff_base_ms > c->backoff_max_ms)
    return ES_INVAL_BKPT("s3: attempts_max or backoff out of range");
  return ES_OK;
}

static int s3_config_strings(s3 *s, const es_s3_config *cfg) {
  char dflt[160];
  s->bucket = es__strdup(cfg->bucket ? cfg->bucket : "");
  s->key_prefix = es__strdup(cfg->key_prefix ? cfg->key_prefix : "");
  s->region = s3_pick(cfg->region, "AWS_REGION", NULL, "us-east-1");
  if (s->region == NULL)
    return ES_NOMEM_BKPT();
  snprintf(dflt, sizeof(dflt), "https://s3.%s.amazonaws.com", s->region);
  s->endpoint =
      s3_pick(cfg->endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", dflt);
  s->access_key = s3_pick(cfg->access_key_id, "AWS_ACCESS_KEY_ID", NULL, "");
  s->secret_key =
      s3_pick(cfg->secret_access_key, "AWS_SECRET_ACCESS_KEY", NULL, "");
  s->session_token = s3_pick(cfg->session_token, "AWS_SESSION_TOKEN", NULL, "");
  if (!s->bucket || !s->key_prefix || !s->endpoint || !s->access_key ||
      !s->secret_key || !s->session_token)
    return ES_NOMEM_BKPT();
  size_t el = strlen(s->endpoint);
  while (el > 0 && s->endpoint[el - 1] == '/')
    s->endpoint[--el] = '\0';
  if (!s->bucket[0] || strpbrk(s->bucket, "/?#% "))
    return ES_INVAL_BKPT("s3: bucket name \"%s\" is empty or invalid",
                         s->bucket);
  if (!s->access_key[0] || !s->secret_key[0])
    return ES_INVAL_BKPT("s3: no credentials (AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY)");
  if (strpbrk(s->region, ":\r\n") || strpbrk(s->session_token, "\r\n") ||
      strlen(s->session_token) > 2048 || strlen(s->region) > 64)
    return ES_INVAL_BKPT("s3: invalid region or session token");
  if (strncmp(s->endpoint, "http://", 7) != 0 &&
      strncmp(s->endpoint, "https://", 8) != 0)
    return ES_INVAL_BKPT("s3: endpoint %s is not an http(s) URL", s->endpoint);
  s->path_style =
      cfg->path_style >= 0 ? cfg->path_style : strcmp(s->endpoint, dflt) != 0;
  snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", s->region);
  return ES_OK;
}

/* Makes the S3 store (see s3.h). */
int es__s3_create(const es_s3_config *cfg, es_objstore **os_out) {
  *os_out = NULL;
  pthread_once(&s3_once, s3_global_init);
  if (s3_load_error[0])
    return ES_ERR(ES_EREMOTE, "%s", s3_load_error);
  s3 *s = es__calloc(1, sizeof(*s));
  if (s == NULL)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&s->mu, NULL);
  s->os.ctx = s;
  s->cfg = *cfg;
  int rc = s3_config_numbers(&s->cfg);
  if (rc == ES_OK)
    rc = s3_config_strings(s, cfg);
  if (rc != ES_OK) {
    s3_destroy(&s->os);
    return rc;
  }
  s->rng = (uint64_t)es__clock_mono_us() ^ (uint64_t)(uintptr_t)s;
  s->os = (es_objstore){.put = s3_put,
                        .get = s3_get,
                        .head = s3_head,
                        .del = s3_del,
                        .list = s3_list,
                        .cancel = s3_cancel,
                        .destroy = s3_destroy,
                        .ctx = s};
  *os_out = &s->os;
  return ES_OK;
}
