/*
 * dims.c -- the dashboard's dimensions of an event; see dims.h for the
 * rules.  Everything here is a pure function of the row's columns: no
 * allocation, no locale (ASCII case folding by hand), so the rollups
 * built at ingest and a scan at query time compute the same bytes.
 */
#include <string.h>

#include "base/codec.h"
#include "store/dims.h"

static const char *const dim_names[ES_DIM_COUNT] = {
    NULL,           "referrer", "utm_source", "utm_medium",
    "utm_campaign", "device",   "browser"};

const char *es__dim_name(int dim) {
  return dim > 0 && dim < ES_DIM_COUNT ? dim_names[dim] : NULL;
}

int es__dim_by_name(const char *name) {
  for (int d = 1; name && d < ES_DIM_COUNT; d++)
    if (strcmp(name, dim_names[d]) == 0)
      return d;
  return 0;
}

static char lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A user agent as the classifier reads it: the string and a lower-case
 * copy (the device tokens ignore case, the browser ones do not), so each
 * token is one strstr (glibc's is vectorised) instead of a byte-by-byte
 * case-folding compare at every offset: that cost 22k instructions an
 * event at ingest (callgrind, 100-byte user agents). */
#define UA_FOLD_MAX 1024 /* longer ones are searched folding as we go */

typedef struct {
  const char *s;    /* as sent */
  const char *fold; /* lower case; NULL when too long to copy */
} ua_text;

/* Whether the lower-case `tok` occurs in s, ASCII case ignored. */
static int has_folding(const char *s, const char *tok) {
  size_t n = strlen(tok);
  for (; *s; s++) {
    size_t i = 0;
    while (i < n && s[i] && lower(s[i]) == tok[i])
      i++;
    if (i == n)
      return 1;
  }
  return 0;
}

/* Whether the lower-case tok occurs in u, case ignored. */
static int has_fold(const ua_text *u, const char *tok) {
  return u->fold ? strstr(u->fold, tok) != NULL : has_folding(u->s, tok);
}

/* Whether any token of the NULL-terminated list occurs in u (case
 * ignored when fold). */
static int has_any(const ua_text *u, const char *const *toks, int fold) {
  for (; *toks; toks++)
    if (fold ? has_fold(u, *toks) : strstr(u->s, *toks) != NULL)
      return 1;
  return 0;
}

static const char *ua_device(const ua_text *u) {
  static const char *const bot[] = {"bot",   "crawl",    "spider",
                                    "slurp", "headless", NULL};
  static const char *const tablet[] = {"ipad", "tablet", NULL};
  static const char *const mobile[] = {"mobi",    "iphone",        "ipod",
                                       "android", "windows phone", NULL};
  if (has_any(u, bot, 1))
    return "bot";
  if (has_any(u, tablet, 1) ||
      (has_fold(u, "android") && !has_fold(u, "mobile")))
    return "tablet";
  if (has_any(u, mobile, 1))
    return "mobile";
  return "desktop";
}

static const char *ua_browser(const ua_text *u) {
  static const char *const edge[] = {"Edg/", "Edge/", "EdgA/", "EdgiOS/", NULL};
  static const char *const opera[] = {"OPR/", "Opera", NULL};
  static const char *const firefox[] = {"Firefox/", "FxiOS/", NULL};
  static const char *const chrome[] = {"Chrome/", "CriOS/", "Chromium/", NULL};
  const char *s = u->s;
  if (has_any(u, edge, 0))
    return "Edge";
  if (has_any(u, opera, 0))
    return "Opera";
  if (strstr(s, "SamsungBrowser/"))
    return "Samsung Internet";
  if (has_any(u, firefox, 0))
    return "Firefox";
  if (has_any(u, chrome, 0))
    return "Chrome";
  if (strstr(s, "Safari/") && strstr(s, "Version/"))
    return "Safari";
  return "other";
}

/* The device and browser of a user agent.  A batch comes from one
 * browser, and the events of many batches interleave on a shard's
 * writer, so the answers for the user agents seen last are kept per
 * thread (UA_MEMO_SETS sets of two, by the string's hash; the entry hit
 * last is tried first) and reused when the string is equal: the result
 * depends on the string only, so ingest and a scan still agree. */
#define UA_MEMO_MAX 256 /* longer user agents are classified each time */
#define UA_MEMO_SETS 16
typedef struct ua_memo {
  char ua[UA_MEMO_MAX]; /* "" when unused */
  const char *device, *browser;
} ua_memo;

static void ua_classify(const char *ua, const char **device,
                        const char **browser) {
  static _Thread_local ua_memo memo[UA_MEMO_SETS][2];
  static _Thread_local unsigned char victim[UA_MEMO_SETS];
  static _Thread_local ua_memo *last;
  if (!ua || !ua[0]) {
    *device = *browser = "(no user agent)";
    return;
  }
  size_t n = strlen(ua);
  ua_memo *m = NULL;
  if (n < UA_MEMO_MAX) {
    if (last && memcmp(last->ua, ua, n + 1) == 0)
      m = last;
    if (!m) {
      size_t set = es__hash64(ua, n, 0) % UA_MEMO_SETS;
      for (int w = 0; !m && w < 2; w++)
        if (memcmp(memo[set][w].ua, ua, n + 1) == 0)
          m = &memo[set][w];
      if (!m) { /* classify into the set's older entry */
        m = &memo[set][victim[set]];
        victim[set] ^= 1;
        m->ua[0] = '\0';
      }
    }
    if (m->ua[0]) {
      last = m;
      *device = m->device;
      *browser = m->browser;
      return;
    }
  }
  char buf[UA_FOLD_MAX];
  ua_text u = {ua, NULL};
  if (n < sizeof(buf)) {
    for (size_t i = 0; i <= n; i++)
      buf[i] = lower(ua[i]);
    u.fold = buf;
  }
  *device = ua_device(&u);
  *browser = ua_browser(&u);
  if (m) {
    memcpy(m->ua, ua, n + 1);
    m->device = *device;
    m->browser = *browser;
    last = m;
  }
}

/* n bytes of s into out (ES_DIM_VALUE_MAX + 1 bytes), cut at a UTF-8
 * character boundary when longer than ES_DIM_VALUE_MAX. */
static const char *put_value(char *out, const char *s, size_t n) {
  if (n > ES_DIM_VALUE_MAX) {
    n = ES_DIM_VALUE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--; /* s[n] continues a character: cut before it */
  }
  memcpy(out, s, n);
  out[n] = '\0';
  return out;
}

/* The host of a "scheme://[user@]host[:port]/..." URL, lower case, into
 * out; NULL when u has no "://" or an empty host. */
static const char *url_host(const char *u, char *out) {
  if (!u)
    return NULL;
  /* The scheme (letters, digits, +-.) then "://": the same as the first
   * "://" with only scheme characters before it, in one pass. */
  const char *p = u;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
    p++;
  if (p == u || strncmp(p, "://", 3) != 0)
    return NULL;
  p += 3;
  size_t end = strcspn(p, "/?#");
  const char *at = memchr(p, '@', end);
  if (at) {
    end -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  if (end == 0)
    return NULL;
  put_value(out, p, end);
  for (char *c = out; *c; c++)
    *c = lower(*c);
  return out;
}

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* The first `name` parameter of the URL's query string, decoded into
 * out (as URLSearchParams.get reads it); NULL when missing or empty. */
static const char *url_param(const char *url, const char *name, char *out) {
  const char *q = url ? strchr(url, '?') : NULL;
  if (!q)
    return NULL;
  size_t nlen = strlen(name);
  const char *p = q + 1;
  while (*p && *p != '#') {
    size_t len = strcspn(p, "&#");
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len;
    if (klen == nlen && memcmp(p, name, nlen) == 0) {
      const char *v = eq ? eq + 1 : p + len, *vend = p + len;
      char dec[ES_DIM_VALUE_MAX * 3 + 4];
      size_t n = 0;
      while (v < vend && n < sizeof(dec) - 1) {
        int hi, lo;
        if (*v == '%' && vend - v >= 3 && (hi = hexval(v[1])) >= 0 &&
            (lo = hexval(v[2])) >= 0) {
          dec[n++] = (char)(hi << 4 | lo);
          v += 3;
        } else {
          dec[n++] = *v == '+' ? ' ' : *v;
          v++;
        }
      }
      dec[n] = '\0';
      n = strlen(dec); /* a decoded NUL ends the value */
      return n ? put_value(out, dec, n) : NULL;
    }
    p += len;
    if (*p == '&')
      p++;
  }
  return NULL;
}

/* One dimension of ev; the strings live in scratch's buffer (one slot
 * per dimension) or are constants. */
static const char *dim_value(const es_event *ev, int dim, es_dims *scratch) {
  char *slot = scratch->buf + (size_t)((dim - 1) % 4) * (ES_DIM_VALUE_MAX + 1);
  if (dim == ES_DIM_DEVICE || dim == ES_DIM_BROWSER) {
    const char *device, *browser;
    ua_classify(ev->user_agent, &device, &browser);
    return dim == ES_DIM_DEVICE ? device : browser;
  }
  if (ev->type != ES_TYPE_PAGE)
    return NULL;
  if (dim == ES_DIM_REFERRER) {
    const char *ref = ev->referrer;
    if (!ref || !ref[0])
      return "(direct)";
    char own[ES_DIM_VALUE_MAX + 1];
    const char *h = url_host(ref, slot);
    if (!h)
      return put_value(slot, ref, strlen(ref));
    const char *oh = url_host(ev->url, own);
    return oh && strcmp(oh, h) == 0 ? "(internal)" : h;
  }
  static const char *const params[] = {NULL, NULL, "utm_source", "utm_medium",
                                       "utm_campaign"};
  if (dim >= ES_DIM_UTM_SOURCE && dim <= ES_DIM_UTM_CAMPAIGN)
    return url_param(ev->url, params[dim], slot);
  return NULL;
}

void es__dims_of(const es_event *ev, es_dims *out) {
  out->v[0] = NULL;
  /* One classification for both user-agent dimensions. */
  ua_classify(ev->user_agent, &out->v[ES_DIM_DEVICE], &out->v[ES_DIM_BROWSER]);
  for (int d = 1; d < ES_DIM_COUNT; d++)
    if (d != ES_DIM_DEVICE && d != ES_DIM_BROWSER)
      out->v[d] = dim_value(ev, d, out);
}

const char *es__dim_of(const es_event *ev, int dim, es_dims *scratch) {
  return dim > 0 && dim < ES_DIM_COUNT ? dim_value(ev, dim, scratch) : NULL;
}
