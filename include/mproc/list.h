/* mproc/list.h - a list (a double-ended queue) of byte items in shared memory.
 *
 * Python's Manager().list() and collections.deque, without the manager: items of any
 * size (0 bytes allowed) appended and popped at either end, read and replaced by index,
 * from every process of the family or, by name, from unrelated ones. It is the shared
 * dictionary's sibling (mproc/dict.h) and keeps the same promises, the same way: it
 * grows (a ring of slots that doubles, memory taken as it is used) up to max_bytes of
 * shared memory (default 1 GiB), one robust lock serializes the calls (gets included:
 * only the dictionary's gets go without it), and a process killed in the middle of any
 * call leaves the list as before or after that call, never between, for the others to
 * go on with. Nothing waits for an item: for a producer and
 * a consumer that must wait, use a queue (mproc/queue.h).
 *
 * Indexes are as Python's: 0 is the first item, -1 the last; one out of range is
 * -ERANGE (Python's IndexError), and so is a pop from an empty list. An item takes 16
 * bytes plus its size, rounded up to a size class as a dictionary's entry, plus 8 bytes
 * of ring. Lifetime, names and threads as mproc/dict.h.
 */
#ifndef MPROC_LIST_H
#define MPROC_LIST_H

#include "mproc/common.h"
#include "mproc/shm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_list mproc_list;

/* Create or attach a list; name, flags and max_bytes as mproc_dict_new's (attaching a
 * name that holds a dictionary is -EINVAL). */
MPROC_API int mproc_list_new(mproc_list **out, const char *name, unsigned flags, size_t max_bytes);

/* Add an item at the end (append) or at the front (appendleft). 0, -ENOSPC / -ENOMEM
 * (no room: unchanged), -EINVAL. */
MPROC_API int mproc_list_append(mproc_list *l, const void *item, size_t len);
MPROC_API int mproc_list_appendleft(mproc_list *l, const void *item, size_t len);

/* Take the last (pop) or the first (popleft) item, into a new buffer from malloc (the
 * caller frees; a 0-byte item is a valid 1-byte allocation). -ERANGE (empty), -ENOMEM
 * (the item stays), -EINVAL. */
MPROC_API int mproc_list_pop(mproc_list *l, void **item, size_t *len);
MPROC_API int mproc_list_popleft(mproc_list *l, void **item, size_t *len);

/* Copy item index into out (cap bytes); *len is its size. -ERANGE, -MPROC_ETOOSMALL
 * (*len says how much is needed), -EINVAL. */
MPROC_API int mproc_list_get(mproc_list *l, long index, void *out, size_t cap, size_t *len);

/* Replace item index. 0, -ERANGE, -ENOSPC / -ENOMEM (unchanged), -EINVAL. */
MPROC_API int mproc_list_set(mproc_list *l, long index, const void *item, size_t len);

/* The number of items into *n. 0 or -EINVAL. */
MPROC_API int mproc_list_len(mproc_list *l, size_t *n);

/* Remove every item (their memory is kept for the items to come). 0 or -EINVAL. */
MPROC_API int mproc_list_clear(mproc_list *l);

/* One item of a snapshot. */
typedef struct mproc_list_item {
    const void *data;
    size_t len;
} mproc_list_item;

/* A snapshot of every item, first to last, as at one moment, in one allocation from
 * malloc (free(*items) releases it all). Python's list(l). 0, -ENOMEM, -EINVAL. */
MPROC_API int mproc_list_items(mproc_list *l, mproc_list_item **items, size_t *n);

/* Name, unlink, free: as mproc_dict_name, mproc_dict_unlink, mproc_dict_free. */
MPROC_API const char *mproc_list_name(const mproc_list *l);
MPROC_API int mproc_list_unlink(mproc_list *l);
MPROC_API void mproc_list_free(mproc_list *l);

#ifdef __cplusplus
}
#endif

#endif
