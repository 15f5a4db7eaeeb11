/*
 * fuzz_manifest.c -- fuzz target: the small metadata files, MANIFEST (a
 * tenant's segment list) and ESDB (the database identity file).
 *
 * The same input is served as both files and read with es__manifest_read
 * and es__esdb_read; then again with the trailing checksum recomputed
 * (fuzz_util.h), which is what lets the fuzzer reach the entry parsing.
 *
 * Properties beyond "no crash, no leak":
 *  1. A manifest read successfully holds `count` entries, each with an id
 *     below next_segment_id, and its size is exactly what they occupy
 *     (a 40-byte frame in version 1, 48 with the generation in version 2,
 *     49 and the node name's bytes in version 3); a version-1 file reads
 *     as generation 1; the node is printable, empty before version 3.
 *  2. A failed read leaves an empty manifest (nothing to free).
 *  3. An ESDB read successfully names 1..1024 shards.
 */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "fuzz_util.h"
#include "memfile.h"
#include "store/manifest.h"

#define TENANT_DIR "/data/tenant"
#define DATA_DIR "/data"

static void manifest_check(es_vfs *vfs, const uint8_t *img, size_t size) {
  memfile_put(vfs, TENANT_DIR "/MANIFEST", img, size);
  memfile_put(vfs, DATA_DIR "/ESDB", img, size);

  es_manifest m;
  int rc = es__manifest_read(vfs, TENANT_DIR, &m);
  fuzz_check_handles(vfs, "es__manifest_read");
  if (rc == ES_OK) {
    uint32_t version = es__get_le32(img + 8);
    size_t node = strlen(m.lsn_node);
    FUZZ_ASSERT(size == (version >= 3   ? 49 + node
                         : version >= 2 ? 48
                                        : 40) +
                            m.count * 40);
    FUZZ_ASSERT(version >= 2 || m.generation == 1);
    FUZZ_ASSERT(version >= 3 || node == 0);
    for (size_t i = 0; i < node; i++)
      FUZZ_ASSERT(m.lsn_node[i] > 0x20 && m.lsn_node[i] < 0x7f);
    for (size_t i = 0; i < m.count; i++)
      FUZZ_ASSERT(m.entries[i].id < m.next_segment_id);
  } else {
    FUZZ_ASSERT(m.count == 0 && m.entries == NULL);
  }
  es__manifest_free(&m);

  uint32_t shards = 0;
  rc = es__esdb_read(vfs, DATA_DIR, &shards);
  fuzz_check_handles(vfs, "es__esdb_read");
  if (rc == ES_OK)
    FUZZ_ASSERT(size == 24 && shards >= 1 && shards <= 1024);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_vfs *vfs = fuzz_vfs();
  manifest_check(vfs, data, size);
  uint8_t *fixed = fuzz_dup(data, size);
  if (fuzz_fix_trailing(fixed, size) > 0)
    manifest_check(vfs, fixed, size);
  free(fixed);
  memfile_clear(vfs);
  return 0;
}
