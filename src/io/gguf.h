/*
 * gguf.h - what the GGUF reader offers the layers above it beyond the public API: a
 * file read into this process's memory (in huge pages where the kernel gives them)
 * instead of mapped, and giving back the pages of a range once it is no longer needed.
 */
#ifndef BN_IO_GGUF_H
#define BN_IO_GGUF_H

#include "core/internal.h"

/* Open a GGUF file with its bytes read into this process's memory instead of mapped.
 * The memory is asked of the kernel in transparent huge pages (when bn_thp_size() is
 * not 0): streaming the weights then misses the TLB once per huge page rather than
 * once per 4 KiB page. The image is read-only once read. progress (may be NULL) is
 * called on this thread with the bytes read of the file's size: (0, size) first, then
 * after each pass of the pool (at most 64 MiB), the last (size, size); false from it
 * cancels the read (BN_ERR_IO, "cancelled"). BN_ERR_OOM when the memory cannot be
 * had; otherwise the errors of bn_gguf_open. */
bn_status bn_gguf_open_read(const char *path, bn_progress_fn progress, void *user,
                            bn_gguf **out);

/* Whether the image was read into memory by bn_gguf_open_read. */
bool bn_gguf_is_read(const bn_gguf *g);

/* Bytes of a read-in image that the kernel holds in huge pages now (from
 * /proc/self/smaps); 0 for a mapped file, or when the kernel does not say. */
uint64_t bn_gguf_huge_bytes(const bn_gguf *g);

/* Give back the memory of the pages that hold [data, data + size) (whole pages inside
 * the range only: of bn_thp_size() for an image read in, where huge pages may hold it)
 * of a file opened with bn_gguf_open or bn_gguf_open_read: the bytes stay readable,
 * from the file, read again if touched. Does nothing for an image opened from memory.
 * A caller giving back a tensor piece by piece passes the range from the end of the
 * last whole page given back (bn_gguf_release_mark). */
void bn_gguf_release_pages(const bn_gguf *g, const void *data, size_t size);

/* Where a release of [data, end) stopped: end rounded down to the page size that
 * bn_gguf_release_pages uses for g (never below data). */
const void *bn_gguf_release_mark(const bn_gguf *g, const void *data, const void *end);

/* A sealed GGUF: the file followed by BN_SEAL_BYTES of trailer, the 8 bytes
 * BN_SEAL_MAGIC and the checksum (bn_seal_hash, little-endian u64) of every byte
 * before the trailer. Training checkpoints are written so; a GGUF reader sees only
 * trailing bytes after the data. */
#define BN_SEAL_MAGIC "BNSEAL01"
#define BN_SEAL_BYTES 16

/* FNV-1a 64 over the 64-bit little-endian words of data (a last partial word padded
 * with zeros). */
uint64_t bn_seal_hash(const void *data, size_t n);

/* bn_gguf_writer_write, then the trailer. */
bn_status bn_gguf_writer_write_sealed(bn_gguf_writer *w, const char *path,
                                      bn_progress_fn progress, void *user);

/* Checks the trailer of a sealed file's bytes: BN_OK with *payload = the bytes before
 * it, or BN_ERR_FORMAT saying whether the trailer is missing or the checksum differs. */
bn_status bn_gguf_seal_check(const void *data, size_t size, size_t *payload);

#endif
