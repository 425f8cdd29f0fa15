/* examples/manager_dict.c - a dictionary and a list shared with a child, no manager.
 *
 * The child fills the dictionary and reverses the list; the parent prints both. Python's
 * tutorial does it through a Manager, a server process that every access talks to; here
 * both live in shared memory and each process works on them directly.
 *
 *   Python:  with Manager() as manager:
 *                d = manager.dict(); l = manager.list(range(10))
 *                p = Process(target=f, args=(d, l)); p.start(); p.join()
 */
#include <mproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mproc_dict *d;
static mproc_list *l;

static int f(void *arg)
{
    (void)arg;
    const char *keys[] = {"1", "2", "0.25"}, *values[] = {"1", "2", "None"};
    for (int i = 0; i < 3; i++)
        if (mproc_dict_set(d, keys[i], strlen(keys[i]), values[i], strlen(values[i])) < 0)
            return 1;
    /* reverse the list in place: swap its ends, moving inwards */
    size_t n;
    if (mproc_list_len(l, &n) < 0)
        return 1;
    for (size_t i = 0; i < n / 2; i++) {
        long a = (long)i, b = (long)(n - 1 - i);
        int x, y;
        size_t len;
        if (mproc_list_get(l, a, &x, sizeof x, &len) < 0 ||
            mproc_list_get(l, b, &y, sizeof y, &len) < 0 ||
            mproc_list_set(l, a, &y, sizeof y) < 0 || mproc_list_set(l, b, &x, sizeof x) < 0)
            return 1;
    }
    return 0;
}

int main(void)
{
    if (mproc_dict_new(&d, NULL, 0, 0) < 0 || mproc_list_new(&l, NULL, 0, 0) < 0) {
        fprintf(stderr, "cannot make the dictionary or the list\n");
        return 1;
    }
    for (int i = 0; i < 10; i++)
        mproc_list_append(l, &i, sizeof i);
    mproc_process *p;
    int code = -1;
    if (mproc_process_new(&p, f, NULL, NULL) == 0 && mproc_process_start(p) == 0 &&
        mproc_process_join(p, 30.0) == 0)
        mproc_process_exitcode(p, &code);
    mproc_process_free(p);
    if (code != 0)
        return 1;

    mproc_dict_item *items;
    size_t n;
    if (mproc_dict_items(d, &items, &n) < 0)
        return 1;
    printf("dict:");
    for (size_t i = 0; i < n; i++)
        printf(" %.*s: %.*s", (int)items[i].key_len, (const char *)items[i].key,
               (int)items[i].value_len, (const char *)items[i].value);
    printf(" (%zu entries)\n", n);
    free(items);
    printf("list:");
    mproc_list_len(l, &n);
    for (long i = 0; i < (long)n; i++) {
        int x;
        size_t len;
        mproc_list_get(l, i, &x, sizeof x, &len);
        printf(" %d", x);
    }
    printf("\n");
    mproc_dict_free(d);
    mproc_list_free(l);
    return 0;
}
