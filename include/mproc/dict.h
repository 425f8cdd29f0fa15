/* mproc/dict.h - a dictionary in shared memory: byte keys to byte values.
 *
 * Python's Manager().dict(), without the manager: no server process, no round trip, no
 * pickling. The dictionary lives in shared memory; every process of the family (forked
 * after mproc_dict_new) uses it directly, and unrelated processes attach it by name, as
 * a SharedMemory block. Keys and values are byte strings (0 bytes allowed); the
 * dictionary copies them in and out.
 *
 * Size: the dictionary grows as entries come (its table doubles; its memory is taken
 * as it is used) up to max_bytes of shared memory (default 1 GiB, at most 1 TiB), which
 * is address space reserved up front in each process that maps it, not memory. An
 * entry takes 24 bytes plus its key and value, rounded up to a size class (16-byte steps
 * up to 1 KiB, then four per doubling: at most a fifth more), plus 8 bytes per slot of
 * the table; a value may be of any size that fits, a key of any below 4 GiB. Memory
 * freed by a delete or a replace is used again by later entries of its class; the
 * dictionary's memory goes back to the system when the last process that maps it frees
 * it (and, if named, it is unlinked). A set that finds no room is -ENOSPC (max_bytes
 * reached, or /dev/shm full) or -ENOMEM (a memory limit), and leaves the dictionary as
 * it was.
 *
 * Robustness: one robust lock serializes the changes (each holds it for a copy and a few
 * stores, never while waiting for anything else); gets take no lock (they read, then
 * check that no change ran meanwhile, and read again if one did), so readers never slow
 * each other or the writers down. A process killed in the middle of any
 * call, SIGKILL included, leaves the dictionary as it was before that call or as it
 * would be after it, never between; the next call by anyone finds out from the lock,
 * takes back the memory the dead call had taken, and goes on. Nothing is lost that a
 * finished call had stored.
 *
 * Lifetime (as mproc/shm.h): a named dictionary stays in /dev/shm until unlinked
 * (mproc_dict_unlink, or MPROC_SHM_AUTO_UNLINK in the creator's free); an anonymous one
 * goes with the last process that maps it. A handle holds one fd and one mapping. It is
 * used by any thread; calls from many threads and processes serialize on the lock.
 * Not async-signal-safe.
 */
#ifndef MPROC_DICT_H
#define MPROC_DICT_H

#include "mproc/common.h"
#include "mproc/shm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_dict mproc_dict;

/* Create or attach a dictionary; flags as mproc_shm_new's:
 *  - name NULL: a new anonymous dictionary, shared with children forked after;
 *  - name and MPROC_SHM_CREATE (| MPROC_SHM_AUTO_UNLINK): a new named one (-EEXIST);
 *  - name NULL and MPROC_SHM_CREATE | MPROC_SHM_NAMED: under a random unique name;
 *  - name alone: attach an existing one (-ENOENT; -EINVAL if the name holds something
 *    else than a dictionary; -EAGAIN if its creator has not finished making it).
 * max_bytes: the most shared memory it may take (0: 1 GiB; rounded up to 68 KiB at
 * least; ignored on attach). Errors also: -EINVAL (flags, max_bytes over 1 TiB),
 * -ENOSPC / -ENOMEM (not even the first 64 KiB), -EMFILE. */
MPROC_API int mproc_dict_new(mproc_dict **out, const char *name, unsigned flags, size_t max_bytes);

/* Set key to value (insert or replace). 0, or -ENOSPC / -ENOMEM (no room: unchanged),
 * -MPROC_ECORRUPT (see below), -EINVAL (NULL d, or NULL key/value with a length). */
MPROC_API int mproc_dict_set(mproc_dict *d, const void *key, size_t key_len, const void *value,
                             size_t value_len);

/* Copy key's value into out (cap bytes); *len is its length. -ENOENT (no such key),
 * -MPROC_ETOOSMALL (*len says how much is needed; nothing copied), -EINVAL. */
MPROC_API int mproc_dict_get(mproc_dict *d, const void *key, size_t key_len, void *out, size_t cap,
                             size_t *len);

/* The same into a new buffer from malloc (the caller frees; a 0-byte value is a valid
 * 1-byte allocation). -ENOENT, -ENOMEM, -EINVAL. */
MPROC_API int mproc_dict_get_alloc(mproc_dict *d, const void *key, size_t key_len, void **out,
                                   size_t *len);

/* 1 if key is there, 0 if not, or an error. */
MPROC_API int mproc_dict_contains(mproc_dict *d, const void *key, size_t key_len);

/* Remove key. 0, -ENOENT, -EINVAL. */
MPROC_API int mproc_dict_delete(mproc_dict *d, const void *key, size_t key_len);

/* Compare and set: if key's value is exactly expect (expect_len bytes), or if expect is
 * NULL and key is absent, set it to value and return 1; otherwise change nothing and
 * return 0. Errors as mproc_dict_set. (Python: d.setdefault, or a check and a set that
 * no other process can come between.) */
MPROC_API int mproc_dict_cas(mproc_dict *d, const void *key, size_t key_len, const void *expect,
                             size_t expect_len, const void *value, size_t value_len);

/* The number of entries into *n. 0 or -EINVAL. */
MPROC_API int mproc_dict_len(mproc_dict *d, size_t *n);

/* Remove every entry (their memory is kept for the entries to come). 0 or -EINVAL. */
MPROC_API int mproc_dict_clear(mproc_dict *d);

/* One entry of a snapshot. */
typedef struct mproc_dict_item {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} mproc_dict_item;

/* A snapshot: every entry as it was at one moment (no other call in between), in no
 * particular order, copied into one allocation from malloc that holds the array and the
 * bytes: free(*items) releases all of it. *n may be 0 (then *items is still freeable).
 * Python's d.items(). 0, -ENOMEM, -EINVAL. */
MPROC_API int mproc_dict_items(mproc_dict *d, mproc_dict_item **items, size_t *n);

/* The name of a named dictionary ("/x"), or NULL. Owned by d. */
MPROC_API const char *mproc_dict_name(const mproc_dict *d);

/* Remove the name (if it still names this dictionary; see mproc_shm_unlink). Processes
 * that have it mapped keep using it. 0, -ENOENT, -EINVAL (anonymous). */
MPROC_API int mproc_dict_unlink(mproc_dict *d);

/* Unmap in this process (and unlink, for the creator of an AUTO_UNLINK one). NULL is a
 * no-op. */
MPROC_API void mproc_dict_free(mproc_dict *d);

/* Every call above may also return -MPROC_ECORRUPT: the shared memory was written by
 * something other than this library (a stray pointer in a user of the same memory);
 * the kills this library survives never cause it. */

#ifdef __cplusplus
}
#endif

#endif
