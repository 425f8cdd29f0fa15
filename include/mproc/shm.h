/* mproc/shm.h - shared memory: blocks, and typed shared values and arrays.
 *
 * mproc_shm is Python's multiprocessing.shared_memory.SharedMemory: a named block in
 * /dev/shm that unrelated processes can attach by name, or an anonymous block (memfd)
 * shared with children by fork. Its space is reserved when it is created, so a full
 * /dev/shm is -ENOSPC at creation, never a SIGBUS at first touch; and a size beyond the
 * memory this process may still take (the machine's available memory and swap, its
 * memory cgroup's limit) is -ENOMEM, checked before anything is reserved, so a request
 * never invites the OOM killer.
 *
 * mproc_array is Python's multiprocessing.Array / Value (a Value is an array of length 1):
 * typed elements in anonymous shared memory, shared with children by fork, with an
 * optional process-shared lock (on by default, as in Python).
 *
 * Lifetime rules:
 *  1. mproc_shm_free() unmaps and closes (Python close()); the name stays in /dev/shm
 *     until some process calls mproc_shm_unlink() (Python unlink()).
 *  2. A block created with MPROC_SHM_AUTO_UNLINK is unlinked by mproc_shm_free() in the
 *     creating process (and not in its forked children), so it cannot leak on normal paths.
 *  3. Pointers into a block are valid until mproc_shm_free() in that process.
 *  4. A creator that is SIGKILLed (or dies in the middle of mproc_shm_new) leaves its name
 *     in /dev/shm, as in Python: no code runs to remove it. Whoever knows the name can
 *     attach it and unlink it. A failed mproc_shm_new that returns leaves nothing.
 */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_shm mproc_shm;

enum mproc_shm_flags {
    MPROC_SHM_CREATE = 1u << 0,      /* create a new block; -EEXIST if the name exists */
    MPROC_SHM_AUTO_UNLINK = 1u << 1, /* the creator's free() also unlinks the name */
    MPROC_SHM_NAMED = 1u << 2,       /* with CREATE and no name: a random unique name */
};

/* Create or attach a block; *out owns an fd and a mapping until mproc_shm_free().
 *  - name NULL: a new anonymous block (memfd) of size bytes, zero-filled (CREATE implied,
 *    AUTO_UNLINK ignored: nothing to unlink). Shared with children by fork or by fd.
 *  - name and MPROC_SHM_CREATE: a new named block of size bytes, zero-filled, mode 0600.
 *  - name NULL and MPROC_SHM_CREATE | MPROC_SHM_NAMED: a new named block under a random
 *    unique name ("/mproc-" and 24 hex digits; Python's SharedMemory(create=True)
 *    without a name), which mproc_shm_name() gives, to be passed to whoever attaches.
 *  - name without CREATE: attach the existing block; size 0 means "its whole size",
 *    otherwise it must not exceed the block's size (the first size bytes are mapped).
 * Names follow Python's rules: an optional leading '/', then 1..250 characters with no
 * other '/' (and not "." or ".."); mproc_shm_name() gives the "/name" form.
 * Errors: -EINVAL (NULL out, bad name, unknown flags, size 0 at creation, size above
 * PTRDIFF_MAX or above the block's when attaching, AUTO_UNLINK without CREATE, NAMED
 * without CREATE or with a name),
 * -EEXIST, -ENOENT, -ENOSPC (no room in /dev/shm), -EMFILE, -ENOMEM (more than the
 * memory available to this process, its cgroup's limit included), -EACCES.
 * Thread-safe; safe in a forked child. */
MPROC_API int mproc_shm_new(mproc_shm **out, const char *name, size_t size, unsigned flags);

/* The mapping's address, size in bytes, and name ("/name", or NULL for anonymous). */
MPROC_API void *mproc_shm_buf(const mproc_shm *s);
MPROC_API size_t mproc_shm_size(const mproc_shm *s);
MPROC_API const char *mproc_shm_name(const mproc_shm *s);

/* The block's fd (owned by s, close-on-exec), e.g. to pass to an exec'd child
 * (dup it without O_CLOEXEC there). -EINVAL for NULL. */
MPROC_API int mproc_shm_fd(const mproc_shm *s);

/* Remove the name from /dev/shm (existing mappings stay valid), if it still names this
 * handle's block. 0, -ENOENT (already gone: unlinked through this or another handle, or
 * removed by hand; a newer block that took the name since is never removed, here or by
 * AUTO_UNLINK), -EINVAL (anonymous block or NULL). */
MPROC_API int mproc_shm_unlink(mproc_shm *s);

/* Unmap and close (Python close()); unlinks too if MPROC_SHM_AUTO_UNLINK and this is the
 * creating process. NULL is a no-op. */
MPROC_API void mproc_shm_free(mproc_shm *s);

/* ---- typed shared values and arrays ----------------------------------------- */

typedef enum mproc_type {
    MPROC_TYPE_I8 = 1,
    MPROC_TYPE_U8,
    MPROC_TYPE_I16,
    MPROC_TYPE_U16,
    MPROC_TYPE_I32,
    MPROC_TYPE_U32,
    MPROC_TYPE_I64,
    MPROC_TYPE_U64,
    MPROC_TYPE_F32,
    MPROC_TYPE_F64
} mproc_type;

/* Size in bytes of one element of a type, or 0 for an unknown type. */
MPROC_API size_t mproc_type_size(mproc_type type);

typedef struct mproc_array mproc_array;
typedef struct mproc_lock mproc_lock;

enum mproc_array_flags {
    MPROC_ARRAY_NOLOCK = 1u << 0, /* Python lock=False: no lock, raw shared memory */
};

/* A zero-filled shared array of len elements of type (len 1: Python's Value), in one
 * anonymous shared mapping (inherited by children forked afterwards). The elements are
 * 16-byte aligned. Unless NOLOCK, it has a recursive robust lock (Python's RLock), so a
 * caller may hold mproc_array_lock() around several get/set/add calls.
 * Errors: -EINVAL (NULL, len 0, unknown type or flags, size overflow), -ENOMEM (more
 * than the memory available to this process, its cgroup's limit included). */
MPROC_API int mproc_array_new(mproc_array **out, mproc_type type, size_t len, unsigned flags);

/* The elements, their count and type. */
MPROC_API void *mproc_array_data(const mproc_array *a);
MPROC_API size_t mproc_array_len(const mproc_array *a);
MPROC_API mproc_type mproc_array_type(const mproc_array *a);

/* The array's lock (Python get_lock()), or NULL when created with MPROC_ARRAY_NOLOCK. */
MPROC_API mproc_lock *mproc_array_lock(const mproc_array *a);

/* Read or write element i as a double / int64 under the array's lock (if it has one).
 * Conversions: an integer stored into a narrower integer element wraps modulo its width
 * (as ctypes does: 300 into U8 reads back 44); a double stored into an integer element
 * is truncated toward zero; a U64 element above INT64_MAX reads back through get_i64
 * as its two's-complement bits.
 * When the lock's previous holder died (MPROC_OWNER_DIED), these calls mark the lock
 * consistent and go on: each touches one element with one aligned store, so the dead
 * holder's write either happened or did not. (A caller that updates several elements
 * while holding the lock itself must do its own repair when it sees MPROC_OWNER_DIED.)
 * Errors: -EINVAL (NULL, i out of range), -ERANGE (NaN, infinite or out-of-int64-range
 * double into an integer element, or such a float element read as int64),
 * -ENOTRECOVERABLE (someone released the lock after a death without repairing it).
 * Without a lock each get and set is one atomic access; add is not atomic then. */
MPROC_API int mproc_array_get_f64(mproc_array *a, size_t i, double *out);
MPROC_API int mproc_array_set_f64(mproc_array *a, size_t i, double v);
MPROC_API int mproc_array_get_i64(mproc_array *a, size_t i, int64_t *out);
MPROC_API int mproc_array_set_i64(mproc_array *a, size_t i, int64_t v);

/* Add delta to element i under the lock (the shared counter of the tutorials);
 * *out (may be NULL) receives the new value as the element holds it (after wrapping).
 * Float elements add (double)delta. Errors as above. */
MPROC_API int mproc_array_add_i64(mproc_array *a, size_t i, int64_t delta, int64_t *out);

/* Unmap. Children that inherited the mapping keep theirs. NULL is a no-op. */
MPROC_API void mproc_array_free(mproc_array *a);

#ifdef __cplusplus
}
#endif

#endif
