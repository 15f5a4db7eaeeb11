/*
 * netaddr.h -- the client's address of a request behind proxies: IP
 * addresses, CIDR lists (--trusted-proxies) and X-Forwarded-For.
 *
 * The rule (docs/AWS.md): the TCP peer is the client unless the peer is a
 * trusted proxy; then X-Forwarded-For is read from its right end (the
 * hop the trusted peer added last), skipping addresses that are trusted
 * proxies too, and the first untrusted one is the client.  An entry that
 * is not an IP address stops the walk: the last address read (a trusted
 * proxy) is taken, never a name a client could have typed.  A client can
 * put anything at the left of the header; only what trusted proxies
 * appended is believed.
 *
 * Addresses are kept as 16 bytes, an IPv4 address as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), so that a v4 peer on a [::] listener and a v4 CIDR
 * compare alike.
 */
#ifndef ES_NETADDR_H
#define ES_NETADDR_H

#include <stddef.h>

#define SVC_CIDRS_MAX 256
#define SVC_IP_TEXT_SIZE 46 /* INET6_ADDRSTRLEN */

typedef struct svc_cidr {
  unsigned char addr[16]; /* the network, host bits cleared */
  int bits;               /* prefix length over the 16 bytes */
} svc_cidr;

typedef struct svc_cidrs {
  svc_cidr v[SVC_CIDRS_MAX];
  size_t count;
} svc_cidrs;

/* "IP" or "IP/BITS" entries separated by commas (blanks around them
 * allowed), at most SVC_CIDRS_MAX; IPv4 and IPv6.  0, or -1 with err
 * naming the bad entry. */
int svc_cidrs_parse(const char *s, svc_cidrs *out, char *err, size_t err_size);

/* Whether a is inside one of the networks. */
int svc_cidrs_match(const svc_cidrs *c, const unsigned char a[16]);

/* s[0..n) (blanks around it allowed) as an address; 0 or -1. */
int svc_ip_parse(const char *s, size_t n, unsigned char out[16]);

/* a as text: dotted quad for an IPv4-mapped address. */
void svc_ip_format(const unsigned char a[16], char *dst, size_t size);

/* The client's address as text (the rule above) from the peer and the
 * request's X-Forwarded-For (xff may be NULL or ""). */
void svc_client_ip(const svc_cidrs *trusted, const unsigned char peer[16],
                   const char *xff, char *dst, size_t size);

#endif
