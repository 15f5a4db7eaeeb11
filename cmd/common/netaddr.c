/*
 * netaddr.c -- addresses, CIDR lists and X-Forwarded-For; see netaddr.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"

static int blank(char c) { return c == ' ' || c == '\t'; }

int svc_ip_parse(const char *s, size_t n, unsigned char out[16]) {
  char buf[SVC_IP_TEXT_SIZE];
  while (n > 0 && blank(*s))
    s++, n--;
  while (n > 0 && blank(s[n - 1]))
    n--;
  if (n == 0 || n >= sizeof buf)
    return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  unsigned char v4[4];
  if (inet_pton(AF_INET, buf, v4) == 1) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
    return 0;
  }
  return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static int is_v4_mapped(const unsigned char a[16]) {
  static const unsigned char prefix[12] = {0, 0, 0, 0, 0,    0,
                                           0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a, prefix, 12) == 0;
}

void svc_ip_format(const unsigned char a[16], char *dst, size_t size) {
  char buf[SVC_IP_TEXT_SIZE];
  const char *ok = is_v4_mapped(a) ? inet_ntop(AF_INET, a + 12, buf, sizeof buf)
                                   : inet_ntop(AF_INET6, a, buf, sizeof buf);
  snprintf(dst, size, "%s", ok ? buf : "");
}

/* One "IP[/BITS]" entry into c; 0 or -1. */
static int cidr_parse(const char *s, size_t n, svc_cidr *c) {
  const char *slash = memchr(s, '/', n);
  size_t ip_n = slash ? (size_t)(slash - s) : n;
  if (svc_ip_parse(s, ip_n, c->addr))
    return -1;
  int v4 = is_v4_mapped(c->addr), max = v4 ? 32 : 128, bits = max;
  if (slash) {
    const char *p = slash + 1, *end = s + n;
    while (end > p && blank(end[-1]))
      end--;
    if (p == end || end - p > 3)
      return -1;
    bits = 0;
    for (; p < end; p++) {
      if (*p < '0' || *p > '9')
        return -1;
      bits = bits * 10 + (*p - '0');
    }
    if (bits > max)
      return -1;
  }
  c->bits = v4 ? bits + 96 : bits;
  for (int i = c->bits; i < 128; i++) /* clear the host bits */
    c->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
  return 0;
}

int svc_cidrs_parse(const char *s, svc_cidrs *out, char *err, size_t err_size) {
  out->count = 0;
  for (const char *p = s;;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (out->count == SVC_CIDRS_MAX) {
      snprintf(err, err_size, "more than %d networks", SVC_CIDRS_MAX);
      out->count = 0;
      return -1;
    }
    if (cidr_parse(p, n, &out->v[out->count])) {
      snprintf(err, err_size,
               "\"%.*s\" is not IP or IP/BITS (10.0.0.0/8, 2001:db8::/32)",
               (int)(n > 64 ? 64 : n), p);
      out->count = 0;
      return -1;
    }
    out->count++;
    if (comma == NULL)
      return 0;
    p = comma + 1;
  }
}

int svc_cidrs_match(const svc_cidrs *c, const unsigned char a[16]) {
  for (size_t i = 0; i < c->count; i++) {
    const svc_cidr *k = &c->v[i];
    int full = k->bits / 8, rest = k->bits % 8;
    if (memcmp(a, k->addr, (size_t)full) != 0)
      continue;
    if (rest == 0 ||
        ((a[full] ^ k->addr[full]) & (unsigned char)(0xff00u >> rest)) == 0)
      return 1;
  }
  return 0;
}

void svc_client_ip(const svc_cidrs *trusted, const unsigned char peer[16],
                   const char *xff, char *dst, size_t size) {
  unsigned char client[16];
  memcpy(client, peer, 16);
  if (trusted && xff && svc_cidrs_match(trusted, peer)) {
    size_t end = strlen(xff);
    for (;;) { /* right to left, while the hop read is trusted */
      size_t start = end;
      while (start > 0 && xff[start - 1] != ',')
        start--;
      unsigned char hop[16];
      if (svc_ip_parse(xff + start, end - start, hop))
        break; /* not an address: keep the last trusted one */
      memcpy(client, hop, 16);
      if (!svc_cidrs_match(trusted, hop) || start == 0)
        break;
      end = start - 1;
    }
  }
  svc_ip_format(client, dst, size);
}
