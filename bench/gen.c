/*
 * gen.c -- the deterministic event generator described in gen.h.
 *
 * How it works: every draw picks a tenant from a precomputed Zipf CDF, then
 * continues that tenant's current visitor session (or starts a new one with
 * a new or returning visitor), then picks what the visitor does.  A
 * visitor's stable attributes (anonymous id, whether and as whom they are
 * identified, user agent, ip) are not stored: they are derived by hashing
 * (seed, tenant, visitor number), so a tenant's state is a few counters and
 * the page the current session is on.
 *
 * Invariants:
 *  1. Output depends only on (seed, opts) and the number of draws: no
 *     clock, no environment, no floating point whose result could differ
 *     between conforming machines beyond the last bit of a CDF comparison
 *     (pow() in the Zipf table is the only libm call).
 *  2. The time cursor never moves backwards; only "late" events are
 *     stamped before it, and all times are whole milliseconds so that the
 *     NDJSON form (millisecond ISO-8601) round-trips exactly.
 *  3. Strings handed out live in the arena until gen_arena_reset/gen_free;
 *     per-tenant page state is kept in the tenant struct, never in the
 *     arena, so resetting the arena does not disturb the stream.
 */
#include "gen.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* PRNG: xoshiro256** seeded by splitmix64 (public-domain algorithms   */
/* by Blackman and Vigna, written out here).                            */
/* ------------------------------------------------------------------ */

typedef struct rng {
  uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A stateless 64-bit mix, for attributes derived from identifiers. */
static uint64_t mix64(uint64_t x) {
  uint64_t s = x;
  return splitmix64(&s);
}

static void rng_seed(rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform in [0, 1) with 53 bits. */
static double rng_u01(rng *r) {
  return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n) (n > 0); the modulo bias is below 2^-32 here. */
static uint64_t rng_below(rng *r, uint64_t n) { return rng_next(r) % n; }

/* ------------------------------------------------------------------ */
/* Arena                                                               */
/* ------------------------------------------------------------------ */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  char data[];
} chunk;

#define CHUNK_BYTES (1u << 20)

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

#define TEXT_MAX 256
#define PATH_MAX_LEN 96 /* paths and titles; a url adds < 100 bytes */
#define RECENT_IDS 64

typedef struct tenant_state {
  char name[16];       /* "t0001" */
  uint32_t visitors;   /* visitors seen so far */
  uint32_t visitor;    /* the current session's visitor */
  int session_left;    /* page views left in the current session */
  int session_fresh;   /* 1 until the session's first page view */
  char path[TEXT_MAX]; /* the page the session is on ("" before any) */
  char url[TEXT_MAX];
  char title[TEXT_MAX];
  char referrer[TEXT_MAX];
} tenant_state;

typedef struct recent_id {
  int tenant;
  char id[40];
} recent_id;

struct gen {
  gen_opts opts;
  uint64_t seed;
  rng r;
  double *tenant_cdf; /* Zipf CDF over tenants */
  tenant_state *tenants;
  chunk *arena;     /* newest chunk first */
  double cursor_us; /* the stream's clock (invariant 2) */
  double step_us;   /* mean distance between events */
  recent_id recent[RECENT_IDS];
  uint64_t drawn;
};

/* 2024-03-01T00:00:00Z */
#define GEN_EPOCH_US (1709251200LL * 1000000LL)

/* ------------------------------------------------------------------ */
/* Vocabulary                                                          */
/* ------------------------------------------------------------------ */

static const char *const user_agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 "
    "Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/122.0.6261.64 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 "
    "Firefox/123.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.59",
};
#define N_UA (sizeof user_agents / sizeof *user_agents)

static const char *const ext_referrers[] = {
    "https://www.google.com/",
    "https://www.google.com/",
    "",
    "",
    "https://www.bing.com/",
    "https://t.co/",
    "https://www.linkedin.com/",
    "https://news.ycombinator.com/",
    "https://duckduckgo.com/",
    "https://www.reddit.com/",
};
#define N_EXTREF (sizeof ext_referrers / sizeof *ext_referrers)

static const char *const words_a[] = {
    "scaling",  "debugging", "shipping", "measuring", "pricing",
    "building", "testing",   "securing", "migrating", "automating",
    "tracking", "designing", "hiring",   "caching",   "indexing"};
static const char *const words_b[] = {
    "postgres",   "webhooks",  "onboarding", "funnels",   "dashboards",
    "kubernetes", "analytics", "email",      "retention", "search",
    "billing",    "sso",       "mobile",     "latency",   "teams",
    "growth",     "forms",     "experiments"};
static const char *const doc_sections[] = {
    "getting-started", "api",       "sdk",      "guides",
    "integrations",    "reference", "security", "billing"};
static const char *const doc_topics[] = {
    "install",  "authentication", "webhooks",      "rate-limits", "events",
    "errors",   "pagination",     "quickstart",    "migration",   "faq",
    "batching", "identify",       "tracking-plan", "retries"};
static const char *const product_cats[] = {
    "Shoes", "Apparel", "Electronics", "Home",   "Garden",
    "Books", "Toys",    "Beauty",      "Sports", "Grocery"};
static const char *const buttons[] = {
    "cta-hero",     "cta-footer",   "nav-signup",  "nav-login",
    "pricing-pro",  "pricing-team", "add-to-cart", "play-video",
    "download-pdf", "contact-sales"};
static const char *const button_labels[] = {
    "Start free trial", "Get started", "Sign up", "Log in",   "Choose Pro",
    "Choose Team",      "Add to cart", "Play",    "Download", "Talk to sales"};
static const char *const forms[] = {"newsletter",   "contact",  "signup",
                                    "demo-request", "checkout", "survey"};
static const char *const custom_events[] = {
    "Signup Started",   "Trial Started",  "Plan Selected",    "Video Played",
    "Product Viewed",   "Product Added",  "Checkout Started", "Order Completed",
    "Search Performed", "File Downloaded"};
static const char *const plans[] = {"free", "starter", "pro", "team",
                                    "enterprise"};
static const char *const first_names[] = {
    "Ada", "Grace",   "Alan",   "Linus",   "Margaret",
    "Ken", "Barbara", "Dennis", "Frances", "Edsger"};
static const char *const last_names[] = {
    "Lovelace", "Hopper", "Turing",  "Torvalds", "Hamilton",
    "Thompson", "Liskov", "Ritchie", "Allen",    "Dijkstra"};
static const char *const industries[] = {"Software",   "Retail",    "Finance",
                                         "Healthcare", "Education", "Media"};

#define PICK(r, arr) ((arr)[rng_below((r), sizeof(arr) / sizeof *(arr))])

/* ------------------------------------------------------------------ */
/* Arena                                                               */
/* ------------------------------------------------------------------ */

/* Returns n bytes from the arena, or NULL when out of memory. */
static char *arena_alloc(gen *g, size_t n) {
  chunk *c = g->arena;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
    chunk *nc = malloc(sizeof *nc + cap);
    if (!nc)
      return NULL;
    nc->next = c;
    nc->used = 0;
    nc->cap = cap;
    g->arena = c = nc;
  }
  char *p = c->data + c->used;
  c->used += n;
  return p;
}

static const char *arena_strdup(gen *g, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = arena_alloc(g, n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* snprintf into the arena; NULL when out of memory. */
__attribute__((format(printf, 2, 3))) static const char *
arena_printf(gen *g, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  if ((size_t)n >= sizeof buf) { /* long: format again straight in */
    char *p = arena_alloc(g, (size_t)n + 1);
    if (!p)
      return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
  }
  return arena_strdup(g, buf);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

void gen_opts_init(gen_opts *opts) {
  opts->events_total = 1000000;
  opts->days = 7;
  opts->tenants = 500;
  opts->zipf_s = 1.1;
  opts->late_frac = 0.01;
  opts->dup_frac = 0.005;
}

gen *gen_init(uint64_t seed, const gen_opts *opts) {
  if (opts->tenants < 1 || opts->tenants > 9999 || opts->days < 1)
    return NULL;
  gen *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  g->opts = *opts;
  g->seed = seed;
  rng_seed(&g->r, seed);
  g->tenant_cdf = malloc(sizeof(double) * (size_t)opts->tenants);
  g->tenants = calloc((size_t)opts->tenants, sizeof *g->tenants);
  if (!g->tenant_cdf || !g->tenants) {
    gen_free(g);
    return NULL;
  }
  double sum = 0;
  for (int i = 0; i < opts->tenants; i++) {
    sum += 1.0 / pow(i + 1, opts->zipf_s);
    g->tenant_cdf[i] = sum;
    snprintf(g->tenants[i].name, sizeof g->tenants[i].name, "t%04d", i + 1);
  }
  for (int i = 0; i < opts->tenants; i++)
    g->tenant_cdf[i] /= sum;
  uint64_t total = opts->events_total ? opts->events_total : 1;
  g->step_us = (double)opts->days * 86400e6 / (double)total;
  g->cursor_us = (double)GEN_EPOCH_US;
  for (int i = 0; i < RECENT_IDS; i++)
    g->recent[i].tenant = -1;
  return g;
}

void gen_free(gen *g) {
  if (!g)
    return;
  gen_arena_reset(g);
  free(g->arena);
  free(g->tenant_cdf);
  free(g->tenants);
  free(g);
}

void gen_arena_reset(gen *g) {
  /* Keep the newest chunk (emptied) so streaming does not malloc/free a
   * megabyte on every reset. */
  chunk *c = g->arena;
  if (!c)
    return;
  chunk *rest = c->next;
  while (rest) {
    chunk *next = rest->next;
    free(rest);
    rest = next;
  }
  c->next = NULL;
  c->used = 0;
}

size_t gen_arena_bytes(const gen *g) {
  size_t n = 0;
  for (const chunk *c = g->arena; c; c = c->next)
    n += c->cap;
  return n;
}

const char *gen_tenant_name(const gen *g, int i) {
  if (i < 0 || i >= g->opts.tenants)
    return NULL;
  return g->tenants[i].name;
}

/* ------------------------------------------------------------------ */
/* Drawing                                                             */
/* ------------------------------------------------------------------ */

static int pick_tenant(gen *g) {
  double u = rng_u01(&g->r);
  int lo = 0, hi = g->opts.tenants - 1;
  while (lo < hi) { /* first index whose CDF exceeds u */
    int mid = (lo + hi) / 2;
    if (g->tenant_cdf[mid] > u)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* Formats 128 bits as a version-4 uuid into out (37 bytes). */
static void format_uuid(char *out, uint64_t hi, uint64_t lo) {
  hi = (hi & ~0xf000ULL) | 0x4000ULL;
  lo = (lo & ~(0xc000ULL << 48)) | (0x8000ULL << 48);
  snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
           (unsigned)(hi >> 16) & 0xffffu, (unsigned)hi & 0xffffu,
           (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffULL));
}

/* A visitor's stable attributes, derived from (seed, tenant, number). */
typedef struct visitor {
  char anon[37];
  int identified;
  uint64_t user_no;
  const char *ua;
  char ip[48];
  uint64_t h;
} visitor;

static void visitor_get(const gen *g, int ti, uint32_t vid, visitor *v) {
  uint64_t h = mix64(g->seed ^ ((uint64_t)(ti + 1) << 40) ^ vid);
  uint64_t h2 = mix64(h);
  v->h = h2;
  format_uuid(v->anon, h, h2);
  v->identified = (h2 % 100) < 30;
  v->user_no = (uint64_t)(ti + 1) * 1000000u + vid;
  v->ua = user_agents[(h2 >> 8) % N_UA];
  uint64_t h3 = mix64(h2);
  if (h3 % 10 == 0)
    snprintf(v->ip, sizeof v->ip, "2a02:%x:%x:%x::%x",
             (unsigned)(h3 >> 8) & 0xffff, (unsigned)(h3 >> 24) & 0xffff,
             (unsigned)(h3 >> 40) & 0xffff, (unsigned)(h3 >> 56) + 1);
  else
    snprintf(v->ip, sizeof v->ip, "%u.%u.%u.%u", (unsigned)(h3 >> 8) % 223 + 1,
             (unsigned)(h3 >> 16) & 0xff, (unsigned)(h3 >> 24) & 0xff,
             (unsigned)(h3 >> 32) % 254 + 1);
}

/* Moves the tenant's session to a new page (path, url, title, referrer).
 * Called for every page view. */
static void next_page(gen *g, tenant_state *t) {
  rng *r = &g->r;
  char path[PATH_MAX_LEN], title[PATH_MAX_LEN];
  int w = (int)rng_below(r, 100);
  if (w < 18) {
    strcpy(path, "/");
    strcpy(title, "Home");
  } else if (w < 28) {
    strcpy(path, "/pricing");
    strcpy(title, "Pricing");
  } else if (w < 53) {
    /* Blog posts: a few hundred slugs, the popular ones more often. */
    double u = rng_u01(r);
    unsigned k = (unsigned)(u * u * 15 * 18);
    const char *a = words_a[k % 15], *b = words_b[k / 15 % 18];
    snprintf(path, sizeof path, "/blog/%s-%s-%u", a, b, k % 7 + 2019);
    snprintf(title, sizeof title, "Blog: %s %s", a, b);
  } else if (w < 73) {
    const char *a = PICK(r, doc_sections), *b = PICK(r, doc_topics);
    snprintf(path, sizeof path, "/docs/%s/%s", a, b);
    snprintf(title, sizeof title, "Docs: %s / %s", a, b);
  } else if (w < 88) {
    double u = rng_u01(r);
    unsigned sku = (unsigned)(u * u * u * 5000);
    snprintf(path, sizeof path, "/product/SKU-%05u", sku);
    snprintf(title, sizeof title, "Product SKU-%05u", sku);
  } else {
    static const char *const other[] = {"/about",   "/contact",  "/signup",
                                        "/signup",  "/login",    "/login",
                                        "/careers", "/changelog"};
    static const char *const other_t[] = {"About",   "Contact",  "Sign up",
                                          "Sign up", "Log in",   "Log in",
                                          "Careers", "Changelog"};
    unsigned k = (unsigned)rng_below(r, 8);
    strcpy(path, other[k]);
    strcpy(title, other_t[k]);
  }
  if (t->session_fresh) {
    snprintf(t->referrer, TEXT_MAX, "%s", PICK(r, ext_referrers));
    if (rng_below(r, 10) == 0)
      snprintf(t->url, TEXT_MAX,
               "https://%s.example.com%s?utm_source=google&utm_medium=cpc"
               "&utm_campaign=spring",
               t->name, path);
    else
      snprintf(t->url, TEXT_MAX, "https://%s.example.com%s", t->name, path);
    t->session_fresh = 0;
  } else {
    memcpy(t->referrer, t->url, TEXT_MAX);
    snprintf(t->url, TEXT_MAX, "https://%s.example.com%s", t->name, path);
  }
  memcpy(t->path, path, sizeof path);
  memcpy(t->title, title, sizeof title);
}

/* Continues the tenant's session or starts a new one; returns the
 * visitor number.  Every session starts with a page view. */
static uint32_t next_visitor(gen *g, tenant_state *t, int *fresh_out) {
  *fresh_out = 0;
  if (t->session_left > 0) {
    t->session_left--;
    return t->visitor;
  }
  if (t->visitors == 0 || rng_u01(&g->r) < 0.35)
    t->visitor = t->visitors++;
  else
    t->visitor = (uint32_t)rng_below(&g->r, t->visitors);
  t->session_left = 1 + (int)rng_below(&g->r, 9);
  t->session_fresh = 1;
  *fresh_out = 1;
  return t->visitor;
}

static const char *props_page(gen *g, const tenant_state *t) {
  const char *q = strchr(t->url, '?');
  return arena_printf(g,
                      "{\"path\":\"%s\",\"referrer\":\"%s\",\"search\":\"%s"
                      "\",\"title\":\"%s\",\"url\":\"%s\"}",
                      t->path, t->referrer, q ? q : "", t->title, t->url);
}

static const char *props_click(gen *g, const tenant_state *t) {
  unsigned k = (unsigned)rng_below(&g->r, 10);
  unsigned pos = (unsigned)rng_below(&g->r, 6) + 1;
  return arena_printf(g,
                      "{\"button_id\":\"%s\",\"label\":\"%s\",\"position\":%u"
                      ",\"page_path\":\"%s\"}",
                      buttons[k], button_labels[k], pos, t->path);
}

/* Note for the property builders: every random value is drawn into a
 * local first, because the order in which function arguments are
 * evaluated is unspecified and would make the stream compiler-dependent. */
static const char *props_form(gen *g) {
  rng *r = &g->r;
  const char *form = PICK(r, forms);
  unsigned fields = (unsigned)rng_below(r, 8) + 1;
  int valid = rng_below(r, 10) != 0;
  unsigned ms = (unsigned)rng_below(r, 60000) + 800;
  return arena_printf(g,
                      "{\"form_id\":\"%s\",\"fields\":%u,\"valid\":%s,"
                      "\"duration_ms\":%u}",
                      form, fields, valid ? "true" : "false", ms);
}

/* A custom track event: 100-400 bytes, numbers, strings, nested objects. */
static const char *props_custom(gen *g, const char *name) {
  rng *r = &g->r;
  unsigned n[6];
  for (int i = 0; i < 6; i++)
    n[i] = (unsigned)(rng_next(r) >> 20);
  const char *wa = PICK(r, words_a);
  const char *wb = PICK(r, words_b);
  const char *cat = PICK(r, product_cats);
  char extra[256] = "";
  if (n[5] & 1)
    snprintf(extra, sizeof extra,
             ",\"experiment\":{\"id\":\"exp_%u\",\"variant\":\"%c\"},"
             "\"tags\":[\"%s\",\"%s\"]",
             n[5] / 2 % 40, 'A' + (int)(n[5] / 80 % 3), wb, wa);
  if (strcmp(name, "Search Performed") == 0)
    return arena_printf(g,
                        "{\"query\":\"%s %s\",\"results\":%u,\"page\":%u,"
                        "\"filters\":{\"category\":\"%s\",\"in_stock\":%s}%s}",
                        wa, wb, n[0] % 500, n[1] % 5 + 1, cat,
                        n[2] & 1 ? "true" : "false", extra);
  if (strcmp(name, "Video Played") == 0 || strcmp(name, "File Downloaded") == 0)
    return arena_printf(g,
                        "{\"asset_id\":\"a_%u\",\"title\":\"%s %s\","
                        "\"duration_s\":%u,\"position_s\":%u,\"quality\":"
                        "\"%s\"%s}",
                        n[0] % 900, wa, wb, n[1] % 1800 + 30, n[2] % 30,
                        n[3] & 1 ? "1080p" : "720p", extra);
  unsigned sku = n[0] % 5000, qty = n[1] % 4 + 1, cents = n[2] % 20000 + 499;
  return arena_printf(g,
                      "{\"product_id\":\"SKU-%05u\",\"name\":\"%s %s\","
                      "\"category\":\"%s\",\"price\":%u.%02u,\"quantity\":%u,"
                      "\"currency\":\"USD\",\"value\":%u.%02u,\"cart\":{"
                      "\"items\":%u,\"coupon\":%s}%s}",
                      sku, cat, wb, cat, cents / 100, cents % 100, qty,
                      cents * qty / 100, cents * qty % 100, qty + n[3] % 3,
                      n[4] % 5 ? "null" : "\"SPRING10\"", extra);
}

static const char *props_identify(gen *g, const visitor *v) {
  uint64_t h = v->h;
  return arena_printf(
      g,
      "{\"email\":\"u_%llu@example.com\",\"name\":\"%s %s\",\"plan\":\"%s\","
      "\"createdAt\":\"2023-%02u-%02uT10:00:00.000Z\",\"company\":{\"name\":"
      "\"Company %u\",\"employees\":%u,\"industry\":\"%s\"}}",
      (unsigned long long)v->user_no, first_names[h % 10],
      last_names[(h >> 4) % 10], plans[(h >> 8) % 5],
      (unsigned)(h >> 12) % 12 + 1, (unsigned)(h >> 16) % 28 + 1,
      (unsigned)(h >> 20) % 3000, (unsigned)(h >> 32) % 5000 + 1,
      industries[(h >> 40) % 6]);
}

static const char *props_group(gen *g, const visitor *v) {
  uint64_t h = v->h;
  return arena_printf(g,
                      "{\"name\":\"Company %u\",\"employees\":%u,\"plan\":"
                      "\"%s\",\"industry\":\"%s\"}",
                      (unsigned)(h >> 20) % 3000,
                      (unsigned)(h >> 32) % 5000 + 1, plans[(h >> 8) % 5],
                      industries[(h >> 40) % 6]);
}

/* Advances the clock and stamps ts/recv (invariant 2). */
static void stamp(gen *g, es_event *ev) {
  rng *r = &g->r;
  g->cursor_us += g->step_us * 2.0 * rng_u01(r);
  int64_t now_ms = (int64_t)(g->cursor_us / 1000.0);
  int64_t ts_ms = now_ms;
  if (rng_u01(r) < g->opts.late_frac)
    ts_ms -= 3600000 + (int64_t)rng_below(r, 5 * 3600000);
  ev->ts_us = ts_ms * 1000;
  ev->recv_us = (now_ms + 20 + (int64_t)rng_below(r, 400)) * 1000;
}

/* Fills the action part of ev (type, name, properties, ids) for visitor v
 * of tenant t; returns -1 when out of memory. */
static int draw_action(gen *g, tenant_state *t, const visitor *v, int fresh,
                       es_event *ev) {
  rng *r = &g->r;
  double u = rng_u01(r);
  /* Sessions start with a page view (~1 event in 6), so 0.615 here
   * gives ~70% page views overall. */
  if (fresh || t->path[0] == 0 || u < 0.615 || (u >= 0.945 && !v->identified)) {
    next_page(g, t);
    ev->type = ES_TYPE_PAGE;
    ev->event = arena_strdup(g, t->title);
    ev->properties = props_page(g, t);
    return ev->event && ev->properties ? 0 : -1;
  }
  ev->type = ES_TYPE_TRACK;
  if (u < 0.745) {
    ev->event = "Button Clicked";
    ev->properties = props_click(g, t);
  } else if (u < 0.80) {
    ev->event = "Form Submitted";
    ev->properties = props_form(g);
  } else if (u < 0.945) {
    ev->event = PICK(r, custom_events);
    ev->properties = props_custom(g, ev->event);
  } else if (u < 0.985) {
    ev->type = ES_TYPE_IDENTIFY;
    ev->properties = props_identify(g, v);
  } else if (u < 0.9925) {
    ev->type = ES_TYPE_ALIAS;
    ev->previous_id = ev->anonymous_id;
    return 0;
  } else {
    ev->type = ES_TYPE_GROUP;
    ev->group_id = arena_printf(g, "g_%u", (unsigned)(v->h >> 20) % 3000);
    ev->properties = props_group(g, v);
    return ev->group_id && ev->properties ? 0 : -1;
  }
  return ev->properties ? 0 : -1;
}

/* Picks the message id: fresh, or (dup_frac) one of a recent event, in
 * which case the tenant switches to that event's.  Returns the tenant. */
static int draw_message_id(gen *g, int ti, char id[40]) {
  rng *r = &g->r;
  if (g->drawn > RECENT_IDS && rng_u01(r) < g->opts.dup_frac) {
    const recent_id *old = &g->recent[rng_below(r, RECENT_IDS)];
    memcpy(id, old->id, 40);
    return old->tenant;
  }
  uint64_t hi = rng_next(r), lo = rng_next(r);
  format_uuid(id, hi, lo);
  recent_id *slot = &g->recent[g->drawn % RECENT_IDS];
  slot->tenant = ti;
  memcpy(slot->id, id, 40);
  return ti;
}

int gen_next(gen *g, es_event *out, const char **tenant_out) {
  es_event ev;
  memset(&ev, 0, sizeof ev);
  char msg_id[40];
  int ti = draw_message_id(g, pick_tenant(g), msg_id);
  tenant_state *t = &g->tenants[ti];
  int fresh;
  uint32_t vid = next_visitor(g, t, &fresh);
  visitor v;
  visitor_get(g, ti, vid, &v);

  stamp(g, &ev);
  ev.message_id = arena_strdup(g, msg_id);
  ev.anonymous_id = arena_strdup(g, v.anon);
  if (v.identified)
    ev.user_id =
        arena_printf(g, "u_%llu@example.com", (unsigned long long)v.user_no);
  ev.user_agent = v.ua;
  ev.ip = arena_strdup(g, v.ip);
  if (draw_action(g, t, &v, fresh, &ev) != 0)
    return -1;
  ev.path = arena_strdup(g, t->path);
  ev.url = arena_strdup(g, t->url);
  ev.referrer = arena_strdup(g, t->referrer);
  if (!ev.message_id || !ev.anonymous_id || (v.identified && !ev.user_id) ||
      !ev.ip || !ev.path || !ev.url || !ev.referrer)
    return -1;
  g->drawn++;
  *out = ev;
  *tenant_out = t->name;
  return 0;
}

/* ------------------------------------------------------------------ */
/* NDJSON                                                              */
/* ------------------------------------------------------------------ */

static const char *const type_names[] = {NULL,       "track", "page", "screen",
                                         "identify", "alias", "group"};

/* Writes s as a JSON string literal (see gen.h). */
void json_string_to(FILE *f, const char *s) {
  putc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      putc(*p, f);
  }
  putc('"', f);
}

static void json_field(FILE *f, const char *key, const char *val, int *first) {
  if (!val)
    return;
  fprintf(f, "%s\"%s\":", *first ? "" : ",", key);
  json_string_to(f, val);
  *first = 0;
}

int gen_write_ndjson(FILE *f, const es_event *ev, const char *tenant) {
  if (ev->type < ES_TYPE_TRACK || ev->type > ES_TYPE_GROUP)
    return -1;
  int first = 1;
  putc('{', f);
  json_field(f, "type", type_names[ev->type], &first);
  int named = ev->type == ES_TYPE_PAGE || ev->type == ES_TYPE_SCREEN;
  json_field(f, named ? "name" : "event", ev->event, &first);
  json_field(f, "messageId", ev->message_id, &first);
  json_field(f, "anonymousId", ev->anonymous_id, &first);
  json_field(f, "userId", ev->user_id, &first);
  json_field(f, "previousId", ev->previous_id, &first);
  json_field(f, "groupId", ev->group_id, &first);

  time_t secs = (time_t)(ev->ts_us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  fprintf(f, ",\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
          tm.tm_sec, (int)(ev->ts_us % 1000000 / 1000));
  if (ev->properties) {
    int traits = ev->type == ES_TYPE_IDENTIFY || ev->type == ES_TYPE_GROUP;
    fprintf(f, ",\"%s\":%s", traits ? "traits" : "properties", ev->properties);
  }
  fputs(",\"context\":{", f);
  first = 1;
  if (ev->path || ev->url || ev->referrer) {
    fputs("\"page\":{", f);
    json_field(f, "path", ev->path, &first);
    json_field(f, "url", ev->url, &first);
    json_field(f, "referrer", ev->referrer, &first);
    putc('}', f);
    first = 0;
  }
  json_field(f, "userAgent", ev->user_agent, &first);
  json_field(f, "ip", ev->ip, &first);
  putc('}', f);
  if (tenant) {
    fputs(",\"writeKey\":", f);
    json_string_to(f, tenant);
  }
  fputs("}\n", f);
  return ferror(f) ? -1 : 0;
}
