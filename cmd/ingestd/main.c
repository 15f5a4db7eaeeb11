/*
 * main.c -- es-ingestd: flags, start-up (open the store, then the ingest
 * service of cmd/ingest/: keys file, recent messageIds reloaded, writers,
 * listener) and the SIGTERM drain.  docs/INGEST.md is the operator's
 * manual.
 *
 * Shutdown order (SIGTERM or SIGINT):
 *
 *  1. stop accepting; close idle connections (ingest_drain);
 *  2. requests already read finish: their jobs become durable and are
 *     answered, with "Connection: close";
 *  3. when no connection is left (or after --drain-timeout-ms, when the
 *     rest are cut), the writers finish the queue and are joined;
 *  4. the loop ends; with --export, the exporter stops (after the
 *     partition it is writing: the rest waits for the next start);
 *     es_flush seals the memtables; with --replica, waits
 *     (up to --drain-timeout-ms) for the replica to hold them (with
 *     --node: hands every tenant over, es_cluster_release); es_close;
 *     exit 0.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/svc.h"
#include "ingest/ingest.h"

static const char usage[] =
    "usage: es-ingestd --data DIR --listen HOST:PORT --keys FILE [flags]\n"
    "\n"
    "Segment-compatible HTTP ingest server (POST /v1/track ... /v1/batch):\n"
    "answers 200 once the request's events are durable in the store.\n"
    "\n"
    "  --data DIR            data directory (created if missing)\n"
    "  --listen HOST:PORT    address to listen on (port 0: any free port;\n"
    "                        the bound port is logged as \"listening\")\n"
    "  --keys FILE           JSON object mapping write key -> tenant id;\n"
    "                        reloaded on SIGHUP (a bad file keeps the old\n"
    "                        keys) and replaced by PUT /v1/admin/keys\n"
    "  --admin-tokens FILE   JSON array of admin tokens (16-200 bytes) for\n"
    "                        /v1/admin/... (Authorization: Bearer TOKEN):\n"
    "                        keys and rules without a restart; reloaded on\n"
    "                        SIGHUP.  Without it the admin API answers 401\n"
    "  --access-log on|off   a JSON log line per request (default on);\n"
    "                        4xx/5xx answers are logged either way\n"
    "  --threads N           writer threads calling es_append (default:\n"
    "                        one per core, at least 2)\n"
    "  --memory-budget MB    3/8 for the store's memtables, 1/4 for\n"
    "                        requests (bodies, parses, queued events; 503\n"
    "                        above), 3/8 for what neither counts, such as\n"
    "                        the store's messageId sets (default 256)\n"
    "  --queue-requests N    requests accepted but not yet durable (being\n"
    "                        parsed or waiting for a writer); 503 above\n"
    "                        (default 128)\n"
    "  --tenant-share PCT    one tenant's share of the budget and of the\n"
    "                        queue; 429 above (default 25)\n"
    "  --dedupe-hours H      an event whose messageId the tenant holds\n"
    "                        with a timestamp within H hours of its own\n"
    "                        is a duplicate: answered 200, not stored\n"
    "                        again; 0 turns it off (default 168)\n"
    "  --read-timeout-ms MS  time to read one request (default 10000)\n"
    "  --idle-timeout-ms MS  keep-alive idle time (default 60000)\n"
    "  --drain-timeout-ms MS SIGTERM: longest wait for requests in flight\n"
    "                        (default 30000)\n"
    "  --max-connections N   (default 10000)\n"
    "  --compact N           merge a tenant's small segments once it has N\n"
    "                        (in the background, after a flush, each merge\n"
    "                        holding at most 3/64 of the budget); 0: never\n"
    "                        (default 8)\n"
    "  --shards N            WAL shards (writer threads of the store) of a\n"
    "                        new store; an existing store keeps its own\n"
    "                        (default: one per core)\n"
    "  --wal-file-mb MB      size of each preallocated WAL file; a shard\n"
    "                        holds at least one plus a spare (default 32;\n"
    "                        lower it on a small disk)\n"
    "  --seal-mb MB          seal a tenant's memtable into a segment at\n"
    "                        this size (default 8)\n"
    "  --seal-age-s S        ...or when its oldest row is S seconds old\n"
    "                        (default 300; a cluster node in tier s3:\n"
    "                        a takeover replays up to S seconds of the old\n"
    "                        holder's WAL chunks, docs/SCALING.md)\n"
    "  --sync full|none      none: no fsync, tests/benchmarks only\n"
    "  --replica s3://BUCKET/PREFIX  copy every sealed segment, manifest,\n"
    "                        IDENTITY and RULES file to S3 in the\n"
    "                        background (docs/REPLICATION.md); credentials\n"
    "                        from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
    "                        AWS_SESSION_TOKEN\n"
    "  --s3-endpoint URL     S3 endpoint (default AWS_ENDPOINT_URL_S3, else\n"
    "                        AWS_ENDPOINT_URL, else AWS's for the region)\n"
    "  --s3-region R         (default AWS_REGION, else us-east-1)\n"
    "  --durability local|s3 local (default): 200 once fsynced here, the S3\n"
    "                        copy follows; s3 (needs --replica): 200 only\n"
    "                        once the request's WAL bytes are in S3 too,\n"
    "                        503 + Retry-After when S3 cannot confirm them\n"
    "  --s3-ack-timeout-ms N tier s3: how long a request waits for S3\n"
    "                        before 503 (default 5000)\n"
    "  --s3-puts-inflight N  tier s3: WAL chunk PUTs a shard keeps under way\n"
    "                        at once, 1..64 (default 4): more hides more of\n"
    "                        S3's round trip; also the appends of a tenant\n"
    "                        in flight, and --threads defaults to N times\n"
    "                        its default\n"
    "  --ship-wal on|off     with --replica in tier local: ship the WAL to\n"
    "                        S3 too (its copy follows within seconds, not\n"
    "                        at the seal), so that the keys file can put a\n"
    "                        tenant in tier s3 (\"durability\": \"s3\");\n"
    "                        on with --durability s3 (default off)\n"
    "  --s3-window-mb N      WAL shipping: MiB of WAL frames a shard keeps\n"
    "                        in memory; past it they are read back from\n"
    "                        the WAL files (default 16)\n"
    "  --s3-backlog-max-mb N WAL shipping: MiB of WAL files kept on disk\n"
    "                        for S3 during an outage; past it the server is\n"
    "                        degraded: their events go up later, in\n"
    "                        segments (default 8192)\n"
    "  --replica-lag-max-s S /readyz answers 503 when the oldest commit not\n"
    "                        yet in S3 is older (default 300)\n"
    "  --replica-grace-s S   an S3 object no uploaded manifest names is\n"
    "                        deleted S seconds after (default 600); an\n"
    "                        erase waits for it (docs/PRIVACY.md)\n"
    "  --export DIR|s3://BUCKET/PREFIX  continuous warehouse export\n"
    "                        (docs/EXPORT.md): each closed hour of every\n"
    "                        tenant becomes a part file of its day's\n"
    "                        partition; hours with late events are\n"
    "                        written again (--s3-endpoint, --s3-region\n"
    "                        apply)\n"
    "  --export-format parquet|ndjson  (default parquet)\n"
    "  --export-compression zstd|snappy|none  Parquet pages (default zstd)\n"
    "  --export-delay-s S    export an hour S seconds after its end\n"
    "                        (default 120)\n"
    "  --export-interval-s S look for hours to export every S seconds\n"
    "                        (default 30)\n"
    "  --export-lookback-hours H  hours older than H are not looked at\n"
    "                        (default 168)\n"
    "  --node NAME           a cluster node (docs/SCALING.md; needs\n"
    "                        --replica): a tenant is written only under its\n"
    "                        lease in the bucket (leases/<tenant>); the\n"
    "                        first request for a tenant another node had\n"
    "                        takes the lease and restores it from S3\n"
    "                        (503 + Retry-After meanwhile); SIGTERM hands\n"
    "                        every tenant over (seal, upload, release).\n"
    "                        With --durability s3 a takeover also replays\n"
    "                        the events the old holder acknowledged that\n"
    "                        are only in its WAL chunks (wal/NAME/...):\n"
    "                        a killed node loses nothing acknowledged.\n"
    "                        NAME belongs to one data directory: give a\n"
    "                        node on a new, empty directory a new NAME\n"
    "  --lease-ttl-ms MS     how long a lease lasts unrenewed: a dead node's\n"
    "                        tenants move after it (default 10000)\n"
    "  --clock-skew-ms MS    most two nodes' clocks differ (default 500)\n"
    "  --forward URL         migration (docs/MIGRATION.md): send every\n"
    "                        stored event on to the legacy Segment endpoint\n"
    "                        URL (http://HOST:PORT; POST /v1/batch with the\n"
    "                        request's write key), asynchronously from a\n"
    "                        queue on disk, retried until it answers\n"
    "  --forward-queue DIR   that queue (default DATA_DIR/forward-queue)\n"
    "  --trusted-proxies CIDR,...  peers (load balancers) whose\n"
    "                        X-Forwarded-For names the client: an event\n"
    "                        without context.ip gets the client's address,\n"
    "                        else the peer's (docs/AWS.md; default none)\n"
    "  --metrics-tenants N   /metrics lists the N tenants with the most\n"
    "                        segment bytes by name (4 series each), the\n"
    "                        rest summed as tenant=\"~others\" (default\n"
    "                        1000; 0: no per-tenant series)\n"
    "  --config FILE         flags from FILE, lines of key = value (key: a\n"
    "                        flag's name without --); the command line's\n"
    "                        flags win (docs/OPERATIONS.md, \"Config file\")\n"
    "  --check-config        check the flags, the config file, --keys,\n"
    "                        --admin-tokens, --listen and --data without\n"
    "                        opening the store; exit 0 (OK) or 1\n"
    "  --help, --version\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads --keys and\n"
    "--admin-tokens.\n"
    "Exit status: 0 after a clean SIGTERM, 1 on a runtime error, 2 on bad\n"
    "usage.  Logs are JSON lines on stderr.\n";

static ingest_config g_cfg;
static ingest_server *g_srv;
static uv_signal_t g_sigterm, g_sigint, g_sighup;
static uv_timer_t g_drain_timer;
static int g_draining;
static const char *g_replica_url, *g_s3_endpoint, *g_s3_region;
static es_replica *g_replica;
static int64_t g_replica_grace_us = -1; /* -1: the library's default */
static int g_check_config; /* --check-config: validate, do not run */
static int g_durability = ES_DURABILITY_LOCAL;
static int64_t g_s3_ack_timeout_us = INT64_C(5000000);
static int g_s3_puts_inflight = ES_S3_PUTS_INFLIGHT_DEFAULT;
static int g_ship_wal;
static int64_t g_s3_window_bytes, g_s3_backlog_bytes; /* 0: the defaults */
static int g_threads_set;            /* --threads given */
static es_exporter_options g_export; /* g_export.out NULL: no --export */
static es_exporter *g_exporter;
static const char *g_node;
static int64_t g_lease_ttl_us, g_clock_skew_us;
static es_cluster *g_cluster;
static int64_t g_seal_age_us; /* --seal-age-s; 0: the default */

#define die_usage(...) svc_usage_error("es-ingestd", __VA_ARGS__)

/* ----------------------------------------------------------------------
 * Flags
 * ---------------------------------------------------------------------- */

static int parse_num(const char *flag, const char *v, long long lo,
                     long long hi, long long *out) {
  return svc_parse_num("es-ingestd", flag, v, lo, hi, out);
}

static int parse_args(int argc, char **argv, ingest_config *cfg) {
  long long v;
  ingest_config_defaults(cfg);
  long long share_pct = 25;
  es_exporter_options_init(&g_export);
  for (int i = 1; i < argc; i++) {
    const char *a, *val;
    int st = svc_next_flag("es-ingestd", usage, argc, argv, &i, &a, &val);
    if (st < 0)
      exit(0); /* --help or --version, printed */
    if (st > 0)
      return st;
    if (strcmp(a, "--data") == 0)
      cfg->data_dir = val;
    else if (strcmp(a, "--listen") == 0)
      cfg->listen = val;
    else if (strcmp(a, "--keys") == 0)
      cfg->keys_path = val;
    else if (strcmp(a, "--admin-tokens") == 0)
      cfg->admin_tokens_path = val;
    else if (strcmp(a, "--access-log") == 0) {
      if (strcmp(val, "on") && strcmp(val, "off"))
        return die_usage("--access-log wants on or off, not \"%s\"", val);
      cfg->access_log = strcmp(val, "on") == 0;
    } else if (strcmp(a, "--sync") == 0) {
      if (strcmp(val, "full") && strcmp(val, "none"))
        return die_usage("--sync wants full or none, not \"%s\"", val);
      cfg->sync_none = strcmp(val, "none") == 0;
    } else if (strcmp(a, "--compact") == 0) {
      if (parse_num(a, val, 0, 1000000, &v))
        return 2;
      cfg->compact_segments = (int)v;
    } else if (strcmp(a, "--shards") == 0) {
      if (parse_num(a, val, 1, 256, &v))
        return 2;
      cfg->shards = (int)v;
    } else if (strcmp(a, "--wal-file-mb") == 0) {
      if (parse_num(a, val, 1, 4096, &v))
        return 2;
      cfg->wal_file_bytes = (size_t)v << 20;
    } else if (strcmp(a, "--seal-mb") == 0) {
      if (parse_num(a, val, 1, 4096, &v))
        return 2;
      cfg->seal_bytes = (size_t)v << 20;
    } else if (strcmp(a, "--seal-age-s") == 0) {
      if (parse_num(a, val, 1, 86400, &v))
        return 2;
      g_seal_age_us = (int64_t)v * 1000000;
    } else if (strcmp(a, "--threads") == 0) {
      if (parse_num(a, val, 1, INGEST_THREADS_MAX, &v))
        return 2;
      cfg->threads = (int)v;
      g_threads_set = 1;
    } else if (strcmp(a, "--memory-budget") == 0) {
      if (parse_num(a, val, 1, 1 << 20, &v))
        return 2;
      cfg->memory_budget_bytes = (size_t)v << 20;
    } else if (strcmp(a, "--queue-requests") == 0) {
      if (parse_num(a, val, 1, 1000000, &v))
        return 2;
      cfg->jobs_max = (size_t)v;
    } else if (strcmp(a, "--tenant-share") == 0) {
      if (parse_num(a, val, 1, 100, &share_pct))
        return 2;
    } else if (strcmp(a, "--dedupe-hours") == 0) {
      if (parse_num(a, val, 0, 24 * 365, &v))
        return 2;
      cfg->dedupe_window_us = v * 3600 * INT64_C(1000000);
    } else if (strcmp(a, "--read-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 3600000, &v))
        return 2;
      cfg->read_timeout_ms = v;
    } else if (strcmp(a, "--idle-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 3600000, &v))
        return 2;
      cfg->idle_timeout_ms = v;
    } else if (strcmp(a, "--drain-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 3600000, &v))
        return 2;
      cfg->drain_timeout_ms = v;
    } else if (strcmp(a, "--replica") == 0) {
      if (strncmp(val, "s3://", 5) != 0 || val[5] == '\0' || val[5] == '/')
        return die_usage("--replica wants s3://BUCKET[/PREFIX], not \"%s\"",
                         val);
      g_replica_url = val;
    } else if (strcmp(a, "--s3-endpoint") == 0) {
      g_s3_endpoint = val;
    } else if (strcmp(a, "--s3-region") == 0) {
      g_s3_region = val;
    } else if (strcmp(a, "--durability") == 0) {
      if (strcmp(val, "s3") == 0)
        g_durability = ES_DURABILITY_S3;
      else if (strcmp(val, "local") == 0)
        g_durability = ES_DURABILITY_LOCAL;
      else
        return die_usage("--durability wants local or s3, not \"%s\"", val);
    } else if (strcmp(a, "--s3-ack-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 600000, &v))
        return 2;
      g_s3_ack_timeout_us = v * INT64_C(1000);
    } else if (strcmp(a, "--s3-puts-inflight") == 0) {
      if (parse_num(a, val, 1, ES_S3_PUTS_INFLIGHT_MAX, &v))
        return 2;
      g_s3_puts_inflight = (int)v;
    } else if (strcmp(a, "--ship-wal") == 0) {
      if (strcmp(val, "on") && strcmp(val, "off"))
        return die_usage("--ship-wal wants on or off, not \"%s\"", val);
      g_ship_wal = strcmp(val, "on") == 0;
    } else if (strcmp(a, "--s3-window-mb") == 0) {
      if (parse_num(a, val, 1, 65536, &v))
        return 2;
      g_s3_window_bytes = v << 20;
    } else if (strcmp(a, "--s3-backlog-max-mb") == 0) {
      if (parse_num(a, val, 1, INT64_C(1) << 30, &v))
        return 2;
      g_s3_backlog_bytes = v << 20;
    } else if (strcmp(a, "--replica-lag-max-s") == 0) {
      if (parse_num(a, val, 1, 7 * 24 * 3600, &v))
        return 2;
      cfg->replica_lag_max_us = v * INT64_C(1000000);
    } else if (strcmp(a, "--replica-grace-s") == 0) {
      if (parse_num(a, val, 0, 7 * 24 * 3600, &v))
        return 2;
      g_replica_grace_us = v * INT64_C(1000000);
    } else if (strcmp(a, "--export") == 0) {
      if (strncmp(val, "s3://", 5) == 0 && (val[5] == '\0' || val[5] == '/'))
        return die_usage("--export wants DIR or s3://BUCKET[/PREFIX], not "
                         "\"%s\"",
                         val);
      g_export.out = val;
    } else if (strcmp(a, "--export-format") == 0) {
      if (strcmp(val, "parquet") && strcmp(val, "ndjson"))
        return die_usage("--export-format wants parquet or ndjson, not \"%s\"",
                         val);
      g_export.format =
          strcmp(val, "ndjson") == 0 ? ES_EXPORT_NDJSON : ES_EXPORT_PARQUET;
    } else if (strcmp(a, "--export-compression") == 0) {
      if (strcmp(val, "zstd") && strcmp(val, "snappy") && strcmp(val, "none"))
        return die_usage("--export-compression wants zstd, snappy or none, "
                         "not \"%s\"",
                         val);
      g_export.compression = strcmp(val, "snappy") == 0 ? ES_EXPORT_SNAPPY
                             : strcmp(val, "none") == 0 ? ES_EXPORT_UNCOMPRESSED
                                                        : ES_EXPORT_ZSTD;
    } else if (strcmp(a, "--export-delay-s") == 0) {
      if (parse_num(a, val, 0, 86400, &v))
        return 2;
      g_export.delay_us = v * INT64_C(1000000);
    } else if (strcmp(a, "--export-interval-s") == 0) {
      if (parse_num(a, val, 1, 86400, &v))
        return 2;
      g_export.interval_us = v * INT64_C(1000000);
    } else if (strcmp(a, "--export-lookback-hours") == 0) {
      if (parse_num(a, val, 1, 366 * 24, &v))
        return 2;
      g_export.lookback_us = v * INT64_C(3600000000);
    } else if (strcmp(a, "--node") == 0) {
      g_node = val;
    } else if (strcmp(a, "--lease-ttl-ms") == 0) {
      if (parse_num(a, val, 100, 3600000, &v))
        return 2;
      g_lease_ttl_us = v * 1000;
    } else if (strcmp(a, "--clock-skew-ms") == 0) {
      if (parse_num(a, val, 1, 600000, &v))
        return 2;
      g_clock_skew_us = v * 1000;
    } else if (strcmp(a, "--forward") == 0) {
      if (strncmp(val, "http://", 7) != 0 && strncmp(val, "https://", 8) != 0)
        return die_usage("--forward wants http://HOST:PORT, not \"%s\"", val);
      cfg->forward_url = val;
    } else if (strcmp(a, "--forward-queue") == 0) {
      cfg->forward_queue_dir = val;
    } else if (strcmp(a, "--trusted-proxies") == 0) {
      char err[160];
      if (svc_cidrs_parse(val, &cfg->trusted_proxies, err, sizeof err))
        return die_usage("--trusted-proxies: %s", err);
    } else if (strcmp(a, "--metrics-tenants") == 0) {
      if (parse_num(a, val, 0, 1000000, &v))
        return 2;
      cfg->metrics_tenants = (size_t)v;
    } else if (strcmp(a, "--max-connections") == 0) {
      if (parse_num(a, val, 1, 1000000, &v))
        return 2;
      cfg->connections_max = (size_t)v;
    } else {
      return die_usage("unknown flag %s", a);
    }
  }
  svc_args_done();
  if (!cfg->data_dir || !cfg->listen || !cfg->keys_path)
    return die_usage("--data, --listen and --keys are required");
  if (cfg->forward_queue_dir && !cfg->forward_url)
    return die_usage("--forward-queue needs --forward");
  if (g_replica_grace_us >= 0 && !g_replica_url)
    return die_usage("--replica-grace-s needs --replica s3://BUCKET/PREFIX");
  if (g_durability == ES_DURABILITY_S3 && !g_replica_url)
    return die_usage("--durability s3 needs --replica s3://BUCKET/PREFIX");
  int export_s3 = g_export.out && strncmp(g_export.out, "s3://", 5) == 0;
  if ((g_s3_endpoint || g_s3_region) && !g_replica_url && !export_s3)
    return die_usage("--s3-endpoint and --s3-region need --replica or an "
                     "s3:// --export");
  g_export.s3_endpoint = g_s3_endpoint;
  g_export.s3_region = g_s3_region;
  if ((g_node || g_lease_ttl_us || g_clock_skew_us) && !g_replica_url)
    return die_usage("--node, --lease-ttl-ms and --clock-skew-ms need "
                     "--replica");
  if ((g_lease_ttl_us || g_clock_skew_us) && !g_node)
    return die_usage("--lease-ttl-ms and --clock-skew-ms need --node");
  if (g_ship_wal && !g_replica_url)
    return die_usage("--ship-wal needs --replica s3://BUCKET/PREFIX");
  cfg->replica_on = g_replica_url != NULL;
  cfg->ship_wal = g_durability == ES_DURABILITY_S3 || g_ship_wal;
  if (cfg->ship_wal) {
    /* an append waits an S3 round trip: several of a tenant's in flight
     * (writers.h, 1), and writer threads enough to keep the shards' PUTs
     * busy */
    cfg->tenant_appends = g_s3_puts_inflight;
    if (!g_threads_set) {
      int t = cfg->threads * g_s3_puts_inflight;
      cfg->threads = t < INGEST_THREADS_MAX ? t : INGEST_THREADS_MAX;
    }
  }
  cfg->tenant_bytes_max =
      (size_t)((double)cfg->memory_budget_bytes * (double)share_pct / 100.0);
  cfg->tenant_jobs_max = (size_t)((double)cfg->jobs_max * share_pct / 100.0);
  if (cfg->tenant_jobs_max < 1)
    cfg->tenant_jobs_max = 1;
  return 0;
}

/* "host:port", "[v6]:port" -> host (in buf) and port; 0 or 2. */
static int split_listen(const char *s, char *host, size_t size, int *port) {
  return svc_parse_hostport("es-ingestd", "--listen", s, host, size, port);
}

/* ----------------------------------------------------------------------
 * Shutdown
 * ---------------------------------------------------------------------- */

static void on_drain_timeout(uv_timer_t *t) {
  (void)t;
  ing_log("warning", "drain timeout: closing the remaining connections", "");
  ingest_close_all(g_srv);
}

/* Step 3 of the shutdown (the service's finished callback): the writers
 * are joined; closing the last handles lets the loop end. */
static void on_finished(void *ud) {
  (void)ud;
  uv_close((uv_handle_t *)&g_sigterm, NULL);
  uv_close((uv_handle_t *)&g_sigint, NULL);
  uv_close((uv_handle_t *)&g_sighup, NULL);
  uv_close((uv_handle_t *)&g_drain_timer, NULL);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  ing_log("info", "SIGHUP: reloading --keys and --admin-tokens", "");
  ingest_reload(g_srv);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (g_draining)
    return;
  g_draining = 1;
  char extra[64];
  snprintf(extra, sizeof extra, ",\"signal\":%d", signum);
  ing_log("info", "draining", extra);
  uv_timer_start(&g_drain_timer, on_drain_timeout,
                 (uint64_t)g_cfg.drain_timeout_ms, 0);
  ingest_drain(g_srv);
}

/* ----------------------------------------------------------------------
 * main
 * ---------------------------------------------------------------------- */

/* Opens the store and serves until the drain ends; 0 or an exit
 * status.  *db_out is the store to close (NULL when it did not open). */
static int run(ingest_config *cfg, uv_loop_t *loop, es_db **db_out) {
  char host[256], extra[512];
  int port = 0, bound = 0, rc;
  size_t budget_bytes = cfg->memory_budget_bytes; /* the --memory-budget */
  if ((rc = split_listen(cfg->listen, host, sizeof host, &port)))
    return rc;
  es_options o;
  es_options_init(&o);
  o.data_dir = cfg->data_dir;
  o.sync_mode = cfg->sync_none ? ES_SYNC_NONE : ES_SYNC_FULL;
  o.log.fn = ing_lib_log;
  /* The flusher merges small segments; each merge holds at most
   * memtable_budget_bytes / 8 of rows (docs/INGEST.md, "Compaction"). */
  o.compact_segments = cfg->compact_segments;
  if (cfg->shards > 0)
    o.shards = cfg->shards;
  if (cfg->wal_file_bytes > 0)
    o.wal_file_bytes = cfg->wal_file_bytes;
  if (cfg->seal_bytes > 0)
    o.seal_bytes = cfg->seal_bytes;
  if (g_seal_age_us > 0)
    o.seal_age_us = g_seal_age_us;
  /* The budget is shared: 3/8 for the store's memtables and the
   * messageIds of their rows (appends wait above it), a quarter for
   * requests in flight (bodies, parses, events), and 3/8 left for what
   * neither counts: the store's cache of checked segment ids (an eighth
   * of the memtables' share at most), the allocator's freed pages not yet
   * returned, connections, flushes' and merges' images (docs/INGEST.md,
   * "Overload"). */
  o.memtable_budget_bytes = cfg->memory_budget_bytes / 8 * 3;
  o.dedupe_window_us = cfg->dedupe_window_us;
  cfg->memory_budget_bytes /= 4;
  cfg->tenant_bytes_max /= 4;
  /* Every file is checked before the store is opened (or created). */
  if (g_replica_url) {
    es_replica_config rc_cfg;
    es_replica_config_init(&rc_cfg);
    rc_cfg.url = g_replica_url;
    rc_cfg.endpoint = g_s3_endpoint;
    rc_cfg.region = g_s3_region;
    if ((rc = es_replica_s3_new(&rc_cfg, &g_replica)) != ES_OK) {
      fprintf(stderr, "es-ingestd: --replica %s: %s: %s\n", g_replica_url,
              es_strerror(rc), es_errdetail());
      return 1;
    }
    o.replica = g_replica;
    if (g_replica_grace_us >= 0)
      o.replica_grace_us = g_replica_grace_us;
    o.durability = g_durability;
    o.s3_ack_timeout_us = g_s3_ack_timeout_us;
    o.s3_puts_inflight = g_s3_puts_inflight;
    o.ship_wal = g_ship_wal;
    o.s3_window_bytes = g_s3_window_bytes;
    o.s3_backlog_bytes_max = g_s3_backlog_bytes;
  }
  if (g_node) { /* before es_open: the uploader starts fenced */
    es_cluster_config cc;
    es_cluster_config_init(&cc);
    cc.node = g_node;
    cc.lease_ttl_us = g_lease_ttl_us;
    cc.clock_skew_us = g_clock_skew_us;
    if ((rc = es_cluster_new(g_replica, &cc, &g_cluster)) != ES_OK) {
      fprintf(stderr, "es-ingestd: --node %s: %s\n", g_node, es_errmsg());
      return 2;
    }
  }
  if ((g_srv = ingest_new(cfg, on_finished, NULL)) == NULL) {
    fprintf(stderr, "es-ingestd: out of memory\n");
    return 1;
  }
  if ((rc = ingest_load(g_srv)) != 0)
    return rc;
  if (g_check_config) {
    char err[4200];
    if (svc_check_data_dir(cfg->data_dir, 0, err, sizeof err)) {
      fprintf(stderr, "es-ingestd: %s\n", err);
      return 1;
    }
    printf("es-ingestd: configuration OK\n");
    return 0;
  }
  es_db *db;
  if ((rc = es_open(&o, &db)) != ES_OK) {
    fprintf(stderr, "es-ingestd: cannot open %s: %s: %s\n", o.data_dir,
            es_strerror(rc), es_errmsg());
    if (rc == ES_EBUSY)
      fprintf(stderr,
              "es-ingestd: another process holds the store (its PID "
              "is in %s/LOCK): one es-ingestd per data directory; "
              "es-queryd and esctl's read commands open it "
              "read-only beside it\n",
              o.data_dir);
    return 1;
  }
  *db_out = db;
  if (g_export.out) {
    if ((rc = es_exporter_start(db, &g_export, &g_exporter)) != ES_OK) {
      fprintf(stderr, "es-ingestd: --export %s: %s: %s\n", g_export.out,
              es_strerror(rc), es_errmsg());
      return 1;
    }
    ingest_set_exporter(g_srv, g_exporter);
  }
  if (g_cluster) {
    if ((rc = es_cluster_start(g_cluster, db)) != ES_OK) {
      fprintf(stderr, "es-ingestd: cluster: %s\n", es_errmsg());
      return 1;
    }
    ingest_set_cluster(g_srv, g_cluster);
  }
  if ((rc = ingest_start(g_srv, loop, db, host, port, &bound)) != 0) {
    uv_run(loop, UV_RUN_DEFAULT); /* the handles it opened are closing */
    return rc;
  }
  uv_signal_init(loop, &g_sigterm);
  uv_signal_init(loop, &g_sigint);
  uv_timer_init(loop, &g_drain_timer);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_signal_start(&g_sigint, on_signal, SIGINT);
  uv_signal_init(loop, &g_sighup);
  uv_signal_start(&g_sighup, on_sighup, SIGHUP);
  snprintf(extra, sizeof extra,
           ",\"host\":\"%s\",\"port\":%d,\"threads\":%d,\"tenants\":%zu,"
           "\"memory_budget_bytes\":%zu",
           host, bound, cfg->threads, ingest_tenants_count(g_srv),
           budget_bytes);
  ing_log("info", "listening", extra);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}

int main(int argc, char **argv) {
  es_db *db = NULL;
  uv_loop_t *loop = NULL;
  svc_args args;
  int rc = svc_args_build("es-ingestd", argc, argv, &args);
  g_check_config = args.check_config;
  if (rc == 0)
    rc = parse_args(args.argc, args.argv, &g_cfg);
  signal(SIGPIPE, SIG_IGN);
  if (rc == 0 && g_check_config) {
    rc = run(&g_cfg, NULL, &db) ? 1 : 0;
    ingest_free(g_srv);
    es_replica_free(g_replica);
    svc_args_free(&args);
    return rc;
  }
  if (g_check_config) {
    svc_args_free(&args);
    return 1;
  }
  if (rc == 0) {
    loop = uv_default_loop();
    rc = run(&g_cfg, loop, &db);
  }
  es_exporter_stop(g_exporter); /* the loop ended: /metrics is done */
  g_exporter = NULL;
  if (db) {
    int frc = rc == 0 ? es_flush(db, NULL) : ES_OK;
    if (frc == ES_OK && rc == 0 && g_cluster) { /* hand every tenant over */
      if (es_cluster_release(g_cluster, NULL, g_cfg.drain_timeout_ms * 1000) !=
          ES_OK)
        ing_log("warning",
                "not every tenant handed over (their leases "
                "expire)",
                "");
    } else if (frc == ES_OK && rc == 0 && g_replica) { /* best effort: the next
                                                   start uploads the rest */
      int drc = es_replica_drain(db, g_cfg.drain_timeout_ms * 1000);
      if (drc != ES_OK)
        ing_log("warning",
                "replica not caught up at exit (the next start "
                "uploads the rest)",
                "");
    }
    es_cluster_stop(g_cluster);
    int crc = es_close(db);
    if (frc != ES_OK || crc != ES_OK) {
      ing_log("error", "flush/close failed", "");
      rc = 1;
    }
  }
  if (loop)
    uv_loop_close(loop);
  es_cluster_free(g_cluster); /* after es_close: its uploader asked it */
  es_replica_free(g_replica); /* after es_close: the store used it */
  ingest_free(g_srv);
  svc_args_free(&args); /* the configuration's strings: last */
  if (rc == 0)
    ing_log("info", "stopped", "");
  return rc;
}
