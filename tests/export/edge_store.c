/*
 * edge_store.c -- writes a store of awkward events and exports it, for
 * export.test.mjs, whose independent readers (DuckDB, parquet-wasm,
 * hyparquet) then read the files.
 *
 *   edge_store DATA_DIR OUT_DIR [ESCTL]
 *
 * Tenant "edge", day 2026-03-01 (and one event on 2026-03-02): every
 * event type; empty strings; a 900 KB property value; invalid UTF-8 in
 * properties and in user_agent; properties that are not JSON; JSON with
 * line breaks; events at 00:00:00.000000 and 23:59:59.999999; and 3000
 * filler events ("fill-NNNN") of 1 KB random properties; and tenant
 * "wide", 70,000 events with distinct event names and anonymous ids
 * (dictionary overflow, many pages).  Then
 * es_export with 4 KiB row groups (many row groups) into OUT_DIR/manyrg
 * and with defaults into OUT_DIR/parquet and OUT_DIR/ndjson.  Public API
 * only.  With ESCTL, also runs `ESCTL export` into OUT_DIR/beside while
 * this process still holds the store open for writing (esctl opens it
 * read-only: it must work beside a running writer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventstore.h"

#define DAY_US INT64_C(86400000000)
#define FILLERS 3000
#define WIDE 70000
#define MAR1_US (INT64_C(20513) * DAY_US) /* 2026-03-01 */

static int check(int rc, const char *what) {
  if (rc != ES_OK) {
    fprintf(stderr, "edge_store: %s: %s: %s\n", what, es_strerror(rc),
            es_errdetail());
    exit(1);
  }
  return rc;
}

static int export_to(es_db *db, const char *out, const char *sub, int format,
                     uint64_t rg_bytes) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", out, sub);
  es_export_options o;
  es_export_options_init(&o);
  o.out_dir = dir;
  o.from_us = MAR1_US;
  o.to_us = MAR1_US + 2 * DAY_US;
  o.format = format;
  o.row_group_bytes = rg_bytes;
  es_export_result r;
  return check(es_export(db, &o, &r), "es_export");
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: edge_store DATA_DIR OUT_DIR [ESCTL]\n");
    return 2;
  }
  es_options opts;
  es_options_init(&opts);
  opts.data_dir = argv[1];
  opts.sync_mode = ES_SYNC_NONE;
  es_db *db;
  check(es_open(&opts, &db), "es_open");
  static char big[900001];
  memset(big, 'x', sizeof big - 1);
  memcpy(big, "{\"big\":\"", 8);
  memcpy(big + sizeof big - 3, "\"}", 2);
  es_event ev[12];
  memset(ev, 0, sizeof ev);
  for (int i = 0; i < 12; i++) {
    ev[i].type = ES_TYPE_TRACK;
    ev[i].ts_us = MAR1_US + 3600000000LL * i;
    ev[i].recv_us = ev[i].ts_us + 1500;
  }
  char ids[12][16];
  for (int i = 0; i < 12; i++) {
    snprintf(ids[i], sizeof ids[i], "edge-%02d", i);
    ev[i].message_id = ids[i];
    ev[i].anonymous_id = "anon-1";
  }
  ev[0].ts_us = MAR1_US; /* midnight exactly */
  ev[0].event = "";      /* empty strings */
  ev[0].path = "";
  ev[0].properties = "{}";
  ev[1].event = "Big";
  ev[1].properties = big;
  ev[2].event = "Bad UTF-8";
  ev[2].properties = "{\"s\":\"caf\xc3\"}"; /* invalid UTF-8 inside */
  ev[2].user_agent = "Mozilla\xff/5.0";
  ev[3].event = "Not JSON";
  ev[3].properties = "plain text, not JSON";
  ev[4].event = "Lines";
  ev[4].properties = "{\n  \"a\": [1,\n 2],\r\n  \"b\": \"x\"\n}";
  ev[5].type = ES_TYPE_PAGE;
  ev[5].event = "Pricing";
  ev[5].path = "/pricing";
  ev[5].url = "https://example.com/pricing?q=1";
  ev[5].referrer = "https://google.com/";
  ev[5].user_agent = "Mozilla/5.0";
  ev[5].ip = "203.0.113.0";
  ev[6].type = ES_TYPE_IDENTIFY;
  ev[6].user_id = "user-1";
  ev[6].properties = "{\"email\":\"a@example.com\"}";
  ev[7].type = ES_TYPE_ALIAS;
  ev[7].user_id = "user-1";
  ev[7].previous_id = "old-1";
  ev[8].type = ES_TYPE_GROUP;
  ev[8].user_id = "user-1";
  ev[8].group_id = "org-9";
  ev[8].properties = "{\"plan\":\"pro\"}";
  ev[9].type = ES_TYPE_SCREEN;
  ev[9].event = "Home";
  ev[10].ts_us = MAR1_US + DAY_US - 1; /* 23:59:59.999999 */
  ev[10].event = "Last";
  ev[11].ts_us = MAR1_US + DAY_US + 5; /* the next day */
  ev[11].event = "Next day";
  ev[11].anonymous_id = NULL;
  ev[11].user_id = "user-2";
  check(es_append(db, "edge", ev, 12, NULL), "es_append");
  /* fillers: 3000 events of ~1 KB of poorly compressible properties, so
   * that 4 KiB row groups make several of them (pages close at 1 MiB) */
  static es_event fill[FILLERS];
  static char fill_ids[FILLERS][16], fill_props[FILLERS][1100];
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < FILLERS; i++) {
    snprintf(fill_ids[i], sizeof fill_ids[i], "fill-%04d", i);
    int n = snprintf(fill_props[i], sizeof fill_props[i], "{\"r\":\"");
    for (int k = 0; k < 1000; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      fill_props[i][n++] = "0123456789abcdef"[x & 15];
    }
    memcpy(fill_props[i] + n, "\"}", 3);
    fill[i].type = ES_TYPE_TRACK;
    fill[i].ts_us = MAR1_US + 1000000LL * (i + 1);
    fill[i].recv_us = fill[i].ts_us;
    fill[i].event = "Filler";
    fill[i].message_id = fill_ids[i];
    fill[i].properties = fill_props[i];
  }
  check(es_append(db, "edge", fill, FILLERS, NULL), "es_append fillers");
  /* tenant "wide": 70,000 events whose event names and anonymous ids are
   * all distinct, so their dictionaries overflow (65,536 entries) and the
   * chunks fall back to PLAIN after a few dictionary pages of 17-bit
   * indices; several data pages per column (20,000 rows each) */
  static es_event wide[1000];
  static char wide_ev[1000][16], wide_anon[1000][16], wide_id[1000][16];
  for (int b = 0; b < WIDE / 1000; b++) {
    for (int i = 0; i < 1000; i++) {
      int k = b * 1000 + i;
      snprintf(wide_ev[i], sizeof wide_ev[i], "ev-%06d", k);
      snprintf(wide_anon[i], sizeof wide_anon[i], "an-%06d", k);
      snprintf(wide_id[i], sizeof wide_id[i], "w-%06d", k);
      memset(&wide[i], 0, sizeof wide[i]);
      wide[i].type = ES_TYPE_TRACK;
      wide[i].ts_us = MAR1_US + 1000000LL * k;
      wide[i].recv_us = wide[i].ts_us;
      wide[i].event = wide_ev[i];
      wide[i].anonymous_id = wide_anon[i];
      wide[i].message_id = wide_id[i];
      wide[i].user_agent = k % 3 ? "UA-a" : "UA-b";
    }
    check(es_append(db, "wide", wide, 1000, NULL), "es_append wide");
  }
  export_to(db, argv[2], "manyrg", ES_EXPORT_PARQUET, 4096);
  export_to(db, argv[2], "parquet", ES_EXPORT_PARQUET, 0);
  export_to(db, argv[2], "ndjson", ES_EXPORT_NDJSON, 0);
  if (argc == 4) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' export --data '%s' --tenant edge --from 2026-03-01 "
             "--to 2026-03-02 --out '%s/beside' >/dev/null",
             argv[3], argv[1], argv[2]);
    if (system(cmd) != 0) {
      fprintf(stderr, "edge_store: esctl export beside the writer failed\n");
      return 1;
    }
  }
  check(es_close(db), "es_close");
  return 0;
}
