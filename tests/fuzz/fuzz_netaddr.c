/*
 * fuzz_netaddr.c -- fuzz target: the client address rule of
 * cmd/common/netaddr.c (--trusted-proxies lists and X-Forwarded-For).
 *
 * Input: a CIDR list, a newline, an X-Forwarded-For value, a newline, 16
 * bytes of peer address (missing bytes are zero).
 *
 * Properties beyond "no crash":
 *  1. An accepted list has 1..SVC_CIDRS_MAX networks; each network
 *     matches its own address, and its prefix length is at most 128.
 *  2. A refused list leaves count 0 (nothing is trusted).
 *  3. The client address is a parseable address; with an untrusted peer
 *     (or an empty list) it is the peer, whatever the header says; with
 *     a trusted peer it is the peer or one of the header's entries.
 */
#include <stdlib.h>
#include <string.h>

#include "common/netaddr.h"
#include "fuzz_util.h"

static svc_cidrs g_cidrs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1), err[256] = "", ip[SVC_IP_TEXT_SIZE];
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *nl1 = memchr(buf, '\n', size);
  char *list = buf, *xff = NULL, *peer_bytes = NULL;
  if (nl1) {
    *nl1 = '\0';
    xff = nl1 + 1;
    char *nl2 = memchr(xff, '\n', size - (size_t)(xff - buf));
    if (nl2) {
      *nl2 = '\0';
      peer_bytes = nl2 + 1;
    }
  }
  unsigned char peer[16] = {0};
  if (peer_bytes) {
    size_t n = size - (size_t)(peer_bytes - buf);
    memcpy(peer, peer_bytes, n > 16 ? 16 : n);
  }
  if (svc_cidrs_parse(list, &g_cidrs, err, sizeof err) == 0) {
    FUZZ_ASSERT(g_cidrs.count >= 1 && g_cidrs.count <= SVC_CIDRS_MAX);
    for (size_t i = 0; i < g_cidrs.count; i++) {
      FUZZ_ASSERT(g_cidrs.v[i].bits >= 0 && g_cidrs.v[i].bits <= 128);
      svc_cidrs one = {.count = 1};
      one.v[0] = g_cidrs.v[i];
      FUZZ_ASSERT(svc_cidrs_match(&one, g_cidrs.v[i].addr));
    }
  } else {
    FUZZ_ASSERT(g_cidrs.count == 0 && err[0] != '\0');
  }
  svc_client_ip(&g_cidrs, peer, xff, ip, sizeof ip);
  unsigned char got[16], peer_norm[16];
  char peer_text[SVC_IP_TEXT_SIZE];
  svc_ip_format(peer, peer_text, sizeof peer_text);
  FUZZ_ASSERT(svc_ip_parse(peer_text, strlen(peer_text), peer_norm) == 0);
  FUZZ_ASSERT(svc_ip_parse(ip, strlen(ip), got) == 0);
  if (!svc_cidrs_match(&g_cidrs, peer) || xff == NULL) {
    FUZZ_ASSERT(memcmp(got, peer_norm, 16) == 0);
  } else if (memcmp(got, peer_norm, 16) != 0) {
    int found = 0; /* one of the header's entries */
    for (char *p = xff, *e; !found; p = e + 1) {
      e = strchr(p, ',');
      unsigned char hop[16];
      size_t n = e ? (size_t)(e - p) : strlen(p);
      found = svc_ip_parse(p, n, hop) == 0 && memcmp(hop, got, 16) == 0;
      if (e == NULL)
        break;
    }
    FUZZ_ASSERT(found);
  }
  free(buf);
  return 0;
}
