/*
 * s3xml.c -- the minimal XML reader of the S3 client.
 *
 * S3 answers ListObjectsV2, CreateMultipartUpload, CompleteMultipartUpload
 * and errors with small XML documents.  We need a handful of leaf elements
 * from them (Key, Size, ETag, IsTruncated, NextContinuationToken, UploadId,
 * Code, Message), so this is an element finder, not an XML parser: it
 * looks for "<Name>" or "<Name attr...>" and the matching "</Name>", and
 * decodes the five predefined entities and numeric character references
 * in the text between.  It is fuzzed (tests/fuzz/fuzz_s3xml.c).
 *
 * Invariants:
 *  1. Every read is bounded by the document's length: the input need not
 *     be NUL-terminated and may be cut anywhere.
 *  2. A field that cannot be decoded (an unknown entity, a reference to
 *     NUL or beyond U+10FFFF, text longer than its buffer) makes the
 *     whole call fail with ES_EREMOTE: a key is never silently altered.
 *  3. Raw '<' cannot occur in text, so an element found inside a
 *     <Contents> block belongs to that block; a key's text cannot fake an
 *     element.
 */
#include <string.h>

#include "replicate/s3.h"

/* Finds the next element named tag in [p, end): *body..*body_end is its
 * content, *after points past its end tag.  Returns 1 if found. */
static int s3xml_find(const char *p, const char *end, const char *tag,
                      const char **body, const char **body_end,
                      const char **after) {
  size_t tl = strlen(tag);
  while (p < end) {
    const char *lt = memchr(p, '<', (size_t)(end - p));
    if (lt == NULL || (size_t)(end - lt) < tl + 2)
      return 0;
    p = lt + 1;
    if (memcmp(p, tag, tl) != 0)
      continue;
    char c = p[tl];
    if (c != '>' && c != ' ' && c != '/' && c != '\t' && c != '\n' && c != '\r')
      continue;
    const char *gt = memchr(p + tl, '>', (size_t)(end - (p + tl)));
    if (gt == NULL)
      return 0;
    if (gt[-1] == '/') { /* <Tag/> : empty */
      *body = *body_end = gt + 1;
      *after = gt + 1;
      return 1;
    }
    const char *q = gt + 1;
    *body = q;
    while (q < end) {
      const char *l2 = memchr(q, '<', (size_t)(end - q));
      if (l2 == NULL || (size_t)(end - l2) < tl + 3)
        return 0;
      if (l2[1] == '/' && memcmp(l2 + 2, tag, tl) == 0 && l2[2 + tl] == '>') {
        *body_end = l2;
        *after = l2 + tl + 3;
        return 1;
      }
      q = l2 + 1;
    }
    return 0;
  }
  return 0;
}

static int s3xml_put_utf8(char *out, size_t cap, size_t *o, unsigned long cp) {
  unsigned char b[4];
  size_t n;
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return -1;
  if (cp < 0x80) {
    b[0] = (unsigned char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (unsigned char)(0xC0 | (cp >> 6));
    b[1] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (unsigned char)(0xE0 | (cp >> 12));
    b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  if (*o + n >= cap)
    return -1;
  memcpy(out + *o, b, n);
  *o += n;
  return 0;
}

/* Decodes one character reference or entity at p (just past '&'). */
static int s3xml_entity(const char **pp, const char *end, char *out, size_t cap,
                        size_t *o) {
  static const struct {
    const char *name;
    char c;
  } named[] = {{"amp;", '&'},
               {"lt;", '<'},
               {"gt;", '>'},
               {"quot;", '"'},
               {"apos;", '\''}};
  const char *p = *pp;
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    size_t l = strlen(named[i].name);
    if ((size_t)(end - p) >= l && memcmp(p, named[i].name, l) == 0) {
      *pp = p + l;
      return s3xml_put_utf8(out, cap, o, (unsigned char)named[i].c);
    }
  }
  if (p >= end || *p != '#')
    return -1;
  p++;
  int base = 10;
  if (p < end && (*p == 'x' || *p == 'X')) {
    base = 16;
    p++;
  }
  unsigned long cp = 0;
  int digits = 0;
  for (; p < end && *p != ';'; p++, digits++) {
    int d;
    if (*p >= '0' && *p <= '9')
      d = *p - '0';
    else if (base == 16 && *p >= 'a' && *p <= 'f')
      d = *p - 'a' + 10;
    else if (base == 16 && *p >= 'A' && *p <= 'F')
      d = *p - 'A' + 10;
    else
      return -1;
    if (digits > 8)
      return -1;
    cp = cp * (unsigned long)base + (unsigned long)d;
  }
  if (p >= end || digits == 0)
    return -1;
  *pp = p + 1;
  return s3xml_put_utf8(out, cap, o, cp);
}

/* Decodes text [p, end) into out (capacity cap, NUL-terminated). */
static int s3xml_decode(const char *p, const char *end, char *out, size_t cap) {
  size_t o = 0;
  if (cap == 0)
    return -1;
  while (p < end) {
    char c = *p++;
    if (c == '&') {
      if (s3xml_entity(&p, end, out, cap, &o) != 0)
        return -1;
      continue;
    }
    if (c == '\0' || c == '<' || o + 1 >= cap)
      return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

/* The decoded text of the first element named tag. */
int es__s3xml_text(const char *xml, size_t len, const char *tag, char *out,
                   size_t cap) {
  const char *b, *e, *after;
  if (!s3xml_find(xml, xml + len, tag, &b, &e, &after))
    return ES_ERR(ES_ENOTFOUND, "s3: no <%s> in the response", tag);
  if (s3xml_decode(b, e, out, cap) != 0)
    return ES_ERR(ES_EREMOTE, "s3: malformed <%s> in the response", tag);
  return ES_OK;
}

static int s3xml_u64(const char *b, const char *e, uint64_t *v) {
  uint64_t x = 0;
  if (b == e || e - b > 19)
    return -1;
  for (; b < e; b++) {
    if (*b < '0' || *b > '9')
      return -1;
    x = x * 10 + (uint64_t)(*b - '0');
  }
  *v = x;
  return 0;
}

/* One <Contents> block: Key (required), Size (required), ETag. */
static int s3xml_contents(const char *b, const char *e, es__s3xml_key_fn fn,
                          void *ud) {
  char key[ES_OBJ_KEY_MAX + 1];
  es_objinfo info = {0};
  const char *kb, *ke, *sb, *se, *eb, *ee, *after;
  if (!s3xml_find(b, e, "Key", &kb, &ke, &after) ||
      s3xml_decode(kb, ke, key, sizeof(key)) != 0 || key[0] == '\0')
    return ES_ERR(ES_EREMOTE, "s3: list entry without a valid <Key>");
  if (!s3xml_find(b, e, "Size", &sb, &se, &after) ||
      s3xml_u64(sb, se, &info.size) != 0)
    return ES_ERR(ES_EREMOTE, "s3: list entry %s without a valid <Size>", key);
  if (s3xml_find(b, e, "ETag", &eb, &ee, &after) &&
      s3xml_decode(eb, ee, info.etag, sizeof(info.etag)) != 0)
    return ES_ERR(ES_EREMOTE, "s3: list entry %s with a malformed <ETag>", key);
  return fn(ud, key, &info);
}

/* A ListObjectsV2 page (see s3.h). */
int es__s3xml_list(const char *xml, size_t len, es__s3xml_key_fn fn, void *ud,
                   int *truncated_out, char *token, size_t token_cap) {
  const char *end = xml + len, *b, *e, *after;
  char flag[8];
  *truncated_out = 0;
  if (token_cap > 0)
    token[0] = '\0';
  if (!s3xml_find(xml, end, "ListBucketResult", &b, &e, &after))
    return ES_ERR(ES_EREMOTE, "s3: response is not a ListBucketResult");
  end = e;
  int rc =
      es__s3xml_text(b, (size_t)(end - b), "IsTruncated", flag, sizeof(flag));
  if (rc == ES_OK && strcmp(flag, "true") == 0)
    *truncated_out = 1;
  else if (rc == ES_OK && strcmp(flag, "false") != 0)
    return ES_ERR(ES_EREMOTE, "s3: <IsTruncated> is neither true nor false");
  else if (rc != ES_OK && rc != ES_ENOTFOUND)
    return rc;
  if (*truncated_out) {
    rc = es__s3xml_text(b, (size_t)(end - b), "NextContinuationToken", token,
                        token_cap);
    if (rc != ES_OK || token[0] == '\0')
      return ES_ERR(ES_EREMOTE, "s3: truncated list without a valid "
                                "<NextContinuationToken>");
  }
  const char *p = b;
  while (s3xml_find(p, end, "Contents", &b, &e, &after)) {
    rc = s3xml_contents(b, e, fn, ud);
    if (rc != 0)
      return rc; /* an error, or the callback's stop value */
    p = after;
  }
  return ES_OK;
}
