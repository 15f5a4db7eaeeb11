/*
 * forward.c -- the disk-backed forward queue and its sender (forward.h).
 *
 * The queue is a directory of files q-<seq>.fwd (seq: 16 hex digits,
 * consecutive), each a sequence of frames (fwdqueue.h), and a file
 * "cursor" with "seq offset" of the first frame not yet acknowledged by
 * the legacy side.
 *
 * Invariants:
 *  1. Only the loop thread writes queue files, and only the newest one; a
 *     new start always begins a new file, so a file the sender reads
 *     never changes under it except by growing, and w_seq/w_off (under
 *     mu) say how far it is complete.
 *  2. A frame is written with one write(2) at the file's end; a failed or
 *     short write is cut off again (ftruncate), so a file is always whole
 *     frames (a crash can leave a torn last frame in the newest file: the
 *     next open cuts it, by length and checksum).
 *  3. The sender advances the cursor only past frames the legacy side
 *     answered 2xx, or refused for good (4xx other than 408/429: those go
 *     to rejected.ndjson, counted); a file is deleted once the cursor has
 *     passed it and a newer file exists.
 *  4. A frame is durable (fdatasync) before the 200 of its request is
 *     sent: the loop syncs the newest file once per turn with answers
 *     waiting (fwd_sync, from http.c) and a full file before leaving it
 *     (rotate); the sender thread never syncs queue files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "forward.h"
#include "fwdqueue.h"
#include "ingest.h"

#define FWD_FILE_BYTES (8u << 20)
#define FWD_IDLE_MS 200
#define FWD_CURSOR_SAVE_US 1000000
#define FWD_BACKOFF_MIN_MS 200
#define FWD_BACKOFF_MAX_MS 10000

struct fwd {
  char *dir, *endpoint;
  pthread_t thread;
  int thread_on;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping;
  /* the writer (loop thread); w_seq/w_off/w_fd also read under mu */
  int w_fd;
  uint64_t w_seq, w_off;
  int rotate_errno; /* a left file's fdatasync failed (loop thread) */
  /* the reader (sender thread) */
  uint64_t r_seq, r_off;
  int64_t r_head_us; /* enqueued_us of the frame at the cursor, 0 if none */
  uint64_t saved_seq, saved_off; /* the cursor file's (sender thread) */
  int64_t saved_us;
  /* counters (under mu) */
  uint64_t backlog_events, backlog_bytes;
  uint64_t sent_events, rejected_events, dropped_events, failed_attempts;
  uint64_t sent_batches;
  uint64_t syncs, sync_errors, acks_waited; /* fwd_sync's (loop thread) */
};

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void file_path(const fwd *f, uint64_t seq, char *buf, size_t n) {
  snprintf(buf, n, "%s/q-%016" PRIx64 ".fwd", f->dir, seq);
}

/* --- opening: cursor, files, torn tails -------------------------------- */

/* Scans file seq: counts its frames from `from` into the backlog and cuts
 * a torn tail.  0, or -1 (cannot open). */
static int scan_file(fwd *f, uint64_t seq, uint64_t from) {
  char path[4096];
  file_path(f, seq, path, sizeof path);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return -1;
  uint64_t end, events, bytes;
  int torn = fwdq_scan(fd, from, &end, &events, &bytes);
  f->backlog_events += events;
  f->backlog_bytes += bytes;
  if (torn && ftruncate(fd, (off_t)end) == 0) {
    char extra[64];
    snprintf(extra, sizeof extra, ",\"offset\":%" PRIu64, end);
    ing_log("warning", "forward queue: torn frame cut off", extra);
  }
  close(fd);
  return 0;
}

/* The queue's files: lowest and highest seq (0, 0 and -1 if none). */
static int list_files(const fwd *f, uint64_t *lo, uint64_t *hi) {
  DIR *d = opendir(f->dir);
  int found = 0;
  if (!d)
    return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    unsigned long long s;
    char tail[8];
    if (sscanf(e->d_name, "q-%16llx.fw%1s", &s, tail) != 2 ||
        strcmp(tail, "d") != 0)
      continue;
    if (!found || s < *lo)
      *lo = s;
    if (!found || s > *hi)
      *hi = s;
    found = 1;
  }
  closedir(d);
  return found ? 0 : 1;
}

static void cursor_load(fwd *f) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cursor", f->dir);
  FILE *fp = fopen(path, "r");
  unsigned long long s, o;
  if (fp && fscanf(fp, "%llx %llu", &s, &o) == 2) {
    f->r_seq = s;
    f->r_off = o;
  }
  if (fp)
    fclose(fp);
}

/* Saves the cursor durably (tmp, fsync, rename). */
static void cursor_save(const fwd *f, uint64_t seq, uint64_t off) {
  char path[4096], tmp[4200], text[64];
  snprintf(path, sizeof path, "%s/cursor", f->dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int n = snprintf(text, sizeof text, "%016" PRIx64 " %" PRIu64 "\n", seq, off);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  int ok = write(fd, text, (size_t)n) == n && fdatasync(fd) == 0;
  close(fd);
  if (ok)
    (void)rename(tmp, path);
}

/* Saves the read position when it moved and (unless force) a second has
 * passed since the last save.  Sender thread, mu held (dropped while
 * writing). */
static void cursor_maybe_save(fwd *f, int force) {
  if (f->r_seq == f->saved_seq && f->r_off == f->saved_off)
    return;
  if (!force && wall_us() - f->saved_us < FWD_CURSOR_SAVE_US)
    return;
  f->saved_seq = f->r_seq;
  f->saved_off = f->r_off;
  f->saved_us = wall_us();
  uint64_t seq = f->saved_seq, off = f->saved_off;
  pthread_mutex_unlock(&f->mu);
  cursor_save(f, seq, off);
  pthread_mutex_lock(&f->mu);
}

/* Opens a new newest file (seq) for writing; 0 or -1. */
static int open_writer(fwd *f, uint64_t seq) {
  char path[4096];
  file_path(f, seq, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  f->w_fd = fd;
  f->w_seq = seq;
  f->w_off = 0;
  return 0;
}

/* --- the sender thread ------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t nmemb, void *ud) {
  (void)p;
  (void)ud;
  return size * nmemb;
}

/* curl's progress callback: a stop (SIGTERM's drain) aborts a POST that
 * a hung legacy side would otherwise hold for the whole timeout. */
static int abort_on_stop(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                         curl_off_t un) {
  (void)dt, (void)dn, (void)ut, (void)un;
  return __atomic_load_n(&((fwd *)ud)->stopping, __ATOMIC_RELAXED);
}

/* One POST; the HTTP status, or 0 when the legacy side was not reached. */
static long post(CURL *c, const fwd *f, const char *key, const char *body,
                 size_t n) {
  curl_easy_setopt(c, CURLOPT_URL, f->endpoint);
  curl_easy_setopt(c, CURLOPT_USERNAME, key);
  curl_easy_setopt(c, CURLOPT_PASSWORD, "");
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
  if (curl_easy_perform(c) != CURLE_OK)
    return 0;
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

/* Appends a refused batch to rejected.ndjson (for an operator to look
 * at and replay with esctl import --url). */
static void dead_letter(const fwd *f, long code, const char *body, size_t n) {
  char path[4096], head[64];
  snprintf(path, sizeof path, "%s/rejected.ndjson", f->dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  int hn = snprintf(head, sizeof head, "{\"status\":%ld,\"body\":", code);
  struct iovec iov[3] = {{head, (size_t)hn}, {(void *)body, n}, {"}\n", 2}};
  (void)!writev(fd, iov, 3);
  (void)fdatasync(fd);
  close(fd);
}

/* Waits up to ms, or (whole 0) until new frames are queued, unless
 * stopping; returns stopping.  mu held. */
static int wait_ms(fwd *f, long ms, int whole) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  while (!f->stopping &&
         pthread_cond_timedwait(&f->cv, &f->mu, &ts) != ETIMEDOUT && whole)
    ; /* a backoff is not cut short by new frames, only by a stop */
  return f->stopping;
}

/* Sends one frame until the legacy side takes it (or refuses it for
 * good).  0 done, 1 stopping.  mu not held. */
static int send_frame(fwd *f, CURL *c, const fwdq_head *h, const char *buf) {
  char key[1100];
  snprintf(key, sizeof key, "%.*s",
           (int)(h->key_len < 1024 ? h->key_len : 1024), buf);
  const char *body = buf + h->key_len;
  for (int attempt = 0;; attempt++) {
    long code = post(c, f, key, body, h->body_len);
    int ok = code >= 200 && code < 300;
    int refused = code >= 400 && code < 500 && code != 408 && code != 429;
    pthread_mutex_lock(&f->mu);
    if (ok || refused) {
      *(ok ? &f->sent_events : &f->rejected_events) += h->events;
      f->sent_batches += ok;
      f->backlog_events -= h->events;
      f->backlog_bytes -= h->body_len;
      pthread_mutex_unlock(&f->mu);
      if (refused) {
        char extra[64];
        snprintf(extra, sizeof extra, ",\"status\":%ld,\"events\":%u", code,
                 h->events);
        ing_log("error",
                "forward: legacy refused a batch (kept in "
                "rejected.ndjson)",
                extra);
        dead_letter(f, code, body, h->body_len);
      }
      return 0;
    }
    f->failed_attempts++;
    /* the legacy side is failing: everything before this frame is
     * acknowledged, and a crash during a long outage must not send it
     * again */
    if (attempt == 0)
      cursor_maybe_save(f, 1);
    /* full jitter over an exponential ceiling: a legacy side coming back
     * is not hit by every node's whole backlog at the same instant */
    long ceil = FWD_BACKOFF_MIN_MS << (attempt < 6 ? attempt : 6);
    if (ceil > FWD_BACKOFF_MAX_MS)
      ceil = FWD_BACKOFF_MAX_MS;
    long ms = ceil / 2 + rand() % (ceil / 2 + 1);
    if (attempt == 0 || attempt % 20 == 0) {
      char extra[64];
      snprintf(extra, sizeof extra, ",\"status\":%ld,\"attempt\":%d", code,
               attempt + 1);
      pthread_mutex_unlock(&f->mu);
      ing_log("warning", "forward: legacy not taking batches; retrying", extra);
      pthread_mutex_lock(&f->mu);
    }
    int stop = wait_ms(f, ms, 1);
    pthread_mutex_unlock(&f->mu);
    if (stop)
      return 1;
  }
}

/* The next frame to send, or 0 when caught up (mu held on entry and
 * exit).  Moves to the next file at the end of a finished one. */
static int next_frame(fwd *f, int *rfd, fwdq_head *h, char **buf) {
  for (;;) {
    if (f->r_seq == f->w_seq && f->r_off >= f->w_off)
      return 0;
    if (*rfd < 0) {
      char path[4096];
      file_path(f, f->r_seq, path, sizeof path);
      *rfd = open(path, O_RDONLY | O_CLOEXEC);
      if (*rfd < 0) { /* gone (or never made): the next one */
        f->r_seq++;
        f->r_off = 0;
        continue;
      }
    }
    int rc = fwdq_read(*rfd, f->r_off, h, buf);
    if (rc == 1)
      return 1;
    if (f->r_seq == f->w_seq)
      return 0; /* the writer's file: more is coming */
    /* a finished file is done (a bad frame in it: it was cut at open) */
    char path[4096];
    file_path(f, f->r_seq, path, sizeof path);
    close(*rfd);
    *rfd = -1;
    (void)unlink(path);
    f->r_seq++;
    f->r_off = 0;
  }
}

static void *sender_main(void *arg) {
  fwd *f = arg;
  CURL *c = curl_easy_init();
  int rfd = -1;
  if (c) {
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    static struct curl_slist *hdr;
    if (!hdr)
      hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
  }
  pthread_mutex_lock(&f->mu);
  while (!f->stopping && c) {
    fwdq_head h;
    char *buf = NULL;
    if (!next_frame(f, &rfd, &h, &buf)) {
      f->r_head_us = 0;
      cursor_maybe_save(f, 0);
      wait_ms(f, FWD_IDLE_MS, 0);
      continue;
    }
    f->r_head_us = h.enqueued_us;
    pthread_mutex_unlock(&f->mu);
    int stop = send_frame(f, c, &h, buf);
    free(buf);
    pthread_mutex_lock(&f->mu);
    if (stop)
      break;
    f->r_off += fwdq_frame_bytes(&h);
    cursor_maybe_save(f, 0);
  }
  uint64_t seq = f->r_seq, off = f->r_off;
  pthread_mutex_unlock(&f->mu);
  cursor_save(f, seq, off);
  if (rfd >= 0)
    close(rfd);
  if (c)
    curl_easy_cleanup(c);
  return NULL;
}

/* --- the public calls -------------------------------------------------- */

int fwd_open(const char *url, const char *dir, fwd **out, char *err,
             size_t err_size) {
  fwd *f = calloc(1, sizeof *f);
  *out = NULL;
  if (!f)
    return snprintf(err, err_size, "out of memory"), -1;
  size_t un = strlen(url);
  while (un > 0 && url[un - 1] == '/')
    un--;
  f->dir = strdup(dir);
  f->endpoint = malloc(un + 16);
  f->w_fd = -1;
  if (!f->dir || !f->endpoint) {
    fwd_free(f);
    return snprintf(err, err_size, "out of memory"), -1;
  }
  snprintf(f->endpoint, un + 16, "%.*s/v1/batch", (int)un, url);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(err, err_size, "--forward-queue %s: %s", dir, strerror(errno));
    fwd_free(f);
    return -1;
  }
  uint64_t lo = 0, hi = 0;
  int listed = list_files(f, &lo, &hi);
  if (listed < 0) {
    snprintf(err, err_size, "--forward-queue %s: %s", dir, strerror(errno));
    fwd_free(f);
    return -1;
  }
  cursor_load(f);
  if (listed == 1) { /* empty queue */
    f->r_seq = 0;
    f->r_off = 0;
    hi = 0;
  } else {
    if (f->r_seq < lo || f->r_seq > hi + 1) {
      f->r_seq = lo;
      f->r_off = 0;
    }
    for (uint64_t s = lo; s < f->r_seq; s++) { /* sent before a crash */
      char path[4096];
      file_path(f, s, path, sizeof path);
      (void)unlink(path);
    }
    for (uint64_t s = f->r_seq; s <= hi; s++)
      (void)scan_file(f, s, s == f->r_seq ? f->r_off : 0);
    hi++;
  }
  f->saved_seq = f->r_seq;
  f->saved_off = f->r_off;
  if (open_writer(f, hi) != 0) {
    snprintf(err, err_size, "--forward-queue %s: %s", dir, strerror(errno));
    fwd_free(f);
    return -1;
  }
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (pthread_create(&f->thread, NULL, sender_main, f) != 0) {
    snprintf(err, err_size, "cannot start the forward thread");
    fwd_free(f);
    return -1;
  }
  (void)pthread_setname_np(f->thread, "ing-forward");
  f->thread_on = 1;
  *out = f;
  return 0;
}

/* {"batch":[stored events]} into out; the count in *events. */
static int encode(seg_buf *out, const es_event *evs, size_t n,
                  const uint8_t *dup, uint32_t *events) {
  *events = 0;
  if (seg_buf_put(out, "{\"batch\":[", 10))
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (dup && dup[i])
      continue;
    if ((*events && seg_buf_put(out, ",", 1)) || seg_event_write(out, &evs[i]))
      return -1;
    (*events)++;
  }
  return seg_buf_put(out, "]}", 2);
}

/* Starts the next file (the current one is full).  Loop thread.  The
 * full file is made durable before it is left (fwd_sync syncs only the
 * newest one); a failure is reported by the next fwd_sync. */
static void rotate(fwd *f) {
  int old = f->w_fd;
  if (fdatasync(old) != 0 && !f->rotate_errno)
    f->rotate_errno = errno ? errno : EIO;
  pthread_mutex_lock(&f->mu);
  f->syncs++;
  if (open_writer(f, f->w_seq + 1) != 0) {
    f->w_fd = old; /* keep writing the full one */
    pthread_mutex_unlock(&f->mu);
    return;
  }
  pthread_mutex_unlock(&f->mu);
  close(old);
}

int fwd_submit(fwd *f, const char *key, const es_event *evs, size_t n,
               const uint8_t *dup) {
  seg_buf body;
  seg_buf_init(&body);
  uint32_t events = 0;
  size_t kn = strlen(key);
  int rc = encode(&body, evs, n, dup, &events);
  if (rc == 0 && events == 0) {
    seg_buf_free(&body);
    return 0; /* all duplicates: nothing new for legacy */
  }
  if (rc == 0)
    rc = fwdq_append(f->w_fd, f->w_off, key, kn, body.data, body.len, events,
                     wall_us());
  int saved_errno = rc ? errno : 0;
  pthread_mutex_lock(&f->mu);
  if (rc == 0) {
    f->w_off += sizeof(fwdq_head) + kn + body.len;
    f->backlog_events += events;
    f->backlog_bytes += body.len;
    pthread_cond_signal(&f->cv);
  } else {
    f->dropped_events += events ? events : n;
  }
  int full = f->w_off >= FWD_FILE_BYTES;
  pthread_mutex_unlock(&f->mu);
  if (rc != 0) {
    char extra[128];
    snprintf(extra, sizeof extra, ",\"events\":%u,\"reason\":\"%s\"", events,
             saved_errno ? strerror(saved_errno) : "out of memory");
    ing_log("error", "forward queue: cannot write; events not forwarded",
            extra);
  }
  if (full)
    rotate(f);
  seg_buf_free(&body);
  return rc == 0 ? 1 : -1;
}

int fwd_sync(fwd *f, size_t acks) {
  int err = fdatasync(f->w_fd) != 0 ? (errno ? errno : EIO) : 0;
  if (!err && f->rotate_errno)
    err = f->rotate_errno;
  f->rotate_errno = 0;
  pthread_mutex_lock(&f->mu);
  f->syncs++;
  f->acks_waited += acks;
  f->sync_errors += err != 0;
  pthread_mutex_unlock(&f->mu);
  if (err) {
    char extra[128];
    snprintf(extra, sizeof extra, ",\"requests\":%zu,\"reason\":\"%s\"", acks,
             strerror(err));
    ing_log("error",
            "forward queue: cannot sync; events stored but may not be "
            "forwarded after a crash",
            extra);
  }
  return err ? -1 : 0;
}

int fwd_metrics(fwd *f, seg_buf *out) {
  char text[3072];
  pthread_mutex_lock(&f->mu);
  double lag = f->r_head_us ? (double)(wall_us() - f->r_head_us) / 1e6 : 0;
  int n = snprintf(
      text, sizeof text,
      "# HELP es_forward_backlog_events Events queued for the legacy "
      "endpoint, not yet acknowledged by it.\n"
      "# TYPE es_forward_backlog_events gauge\n"
      "es_forward_backlog_events %" PRIu64 "\n"
      "# HELP es_forward_backlog_bytes Bytes of batches in the queue.\n"
      "# TYPE es_forward_backlog_bytes gauge\n"
      "es_forward_backlog_bytes %" PRIu64 "\n"
      "# HELP es_forward_lag_seconds Age of the oldest batch being sent (0: "
      "caught up).\n"
      "# TYPE es_forward_lag_seconds gauge\n"
      "es_forward_lag_seconds %.3f\n"
      "# HELP es_forward_events_total Events by outcome: sent (2xx), "
      "rejected (4xx: rejected.ndjson), dropped (queue not writable).\n"
      "# TYPE es_forward_events_total counter\n"
      "es_forward_events_total{status=\"sent\"} %" PRIu64 "\n"
      "es_forward_events_total{status=\"rejected\"} %" PRIu64 "\n"
      "es_forward_events_total{status=\"dropped\"} %" PRIu64 "\n"
      "# HELP es_forward_batches_sent_total Batches the legacy endpoint "
      "acknowledged.\n"
      "# TYPE es_forward_batches_sent_total counter\n"
      "es_forward_batches_sent_total %" PRIu64 "\n"
      "# HELP es_forward_errors_total Attempts that failed (not reached, "
      "408, 429, 5xx) and were retried.\n"
      "# TYPE es_forward_errors_total counter\n"
      "es_forward_errors_total %" PRIu64 "\n"
      "# HELP es_forward_syncs_total fdatasyncs of the queue by the "
      "request path (one per loop turn with answers waiting, and one per "
      "file left).\n"
      "# TYPE es_forward_syncs_total counter\n"
      "es_forward_syncs_total %" PRIu64 "\n"
      "# HELP es_forward_sync_errors_total Queue fdatasyncs that failed "
      "(the requests were answered 200: their events are in the store).\n"
      "# TYPE es_forward_sync_errors_total counter\n"
      "es_forward_sync_errors_total %" PRIu64 "\n"
      "# HELP es_forward_acks_waited_total Answers that waited for a "
      "queue fdatasync (divided by es_forward_syncs_total: the grouping).\n"
      "# TYPE es_forward_acks_waited_total counter\n"
      "es_forward_acks_waited_total %" PRIu64 "\n",
      f->backlog_events, f->backlog_bytes, lag, f->sent_events,
      f->rejected_events, f->dropped_events, f->sent_batches,
      f->failed_attempts, f->syncs, f->sync_errors, f->acks_waited);
  pthread_mutex_unlock(&f->mu);
  return seg_buf_put(out, text, (size_t)n);
}

void fwd_stop(fwd *f) {
  if (!f || !f->thread_on)
    return;
  pthread_mutex_lock(&f->mu);
  __atomic_store_n(&f->stopping, 1, __ATOMIC_RELAXED);
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  pthread_join(f->thread, NULL);
  f->thread_on = 0;
  if (f->w_fd >= 0)
    (void)fdatasync(f->w_fd);
}

void fwd_free(fwd *f) {
  if (!f)
    return;
  fwd_stop(f);
  if (f->w_fd >= 0)
    close(f->w_fd);
  free(f->dir);
  free(f->endpoint);
  free(f);
}
