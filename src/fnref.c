/* src/fnref.c - function references that survive fork, exec and MPI.
 *
 * A task function is never sent to a worker as a raw pointer: a worker started by exec
 * (the spawn start method) or on another node (MPI) runs the same program, but its
 * modules may be loaded at other addresses (ASLR). A reference names the module that
 * holds the function and the function's offset from that module's load bias:
 *
 *   u32 magic | u16 name length | u8 build-id length | u8 flags | u64 offset
 *   | build-id bytes | name bytes (no NUL)
 *
 * The main program is named by the flag MAIN and an empty name (its path may differ
 * between ranks, or be relative); a shared library by the path the dynamic linker
 * recorded for it. The GNU build-id, when the module has one, travels along, so a
 * worker running a different build refuses the reference (-ESTALE) instead of jumping
 * into the wrong code. Decoding also checks that the address lies in an executable
 * segment of the module. Both directions walk the loaded modules with dl_iterate_phdr
 * (a libc call, no kernel interface); the pool's workers cache the last decoded
 * reference, so the walk happens once per function, not once per task.
 *
 * DESIGN: the walks go through mproc__sys_dl_iterate (src/sys/dl.c: never a fork while
 * one of our threads holds the loader's lock), safe in threads and in forked children. The only
 * state is a per-thread cache of the last encoding (mproc__fnref_cached): a submission then costs
 * one look at the loader's generation counters instead of a walk over every module; a dlopen or
 * dlclose since the encoding changes the counters and the walk is made again. Nothing here can be
 * left half-done by a death.
 */
#include "internal.h"

#include "fnref.h"
#include "sys/spawn.h"

#include <elf.h>
#include <link.h>

#define FNREF_MAGIC 0x314e464du /* "MFN1" */
#define FLAG_MAIN 1u
#define HEADER 16u
#define MAX_ID 64u

struct module {
    /* in: what to look for */
    uintptr_t addr;   /* encode: an address inside the module */
    const char *name; /* decode: the module's name (NULL: the main program) */
    /* out */
    int found;
    int index; /* 0: the main program */
    uintptr_t bias;
    const char *fname;
    unsigned char id[MAX_ID];
    size_t id_len;
    int exec_ok; /* decode: addr lies in an executable PT_LOAD */
};

static size_t align4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

static void read_build_id(struct dl_phdr_info *info, struct module *m)
{
    m->id_len = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        const unsigned char *end = p + ph->p_memsz;
        while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
            ElfW(Nhdr) nh;
            memcpy(&nh, p, sizeof nh);
            const unsigned char *name = p + sizeof nh;
            const unsigned char *desc = name + align4(nh.n_namesz);
            const unsigned char *next = desc + align4(nh.n_descsz);
            if (next > end)
                break;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh.n_descsz <= MAX_ID) {
                memcpy(m->id, desc, nh.n_descsz);
                m->id_len = nh.n_descsz;
                return;
            }
            p = next;
        }
    }
}

static bool in_load(struct dl_phdr_info *info, uintptr_t addr, bool need_exec)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (addr >= lo && addr - lo < ph->p_memsz)
            return !need_exec || (ph->p_flags & PF_X) != 0;
    }
    return false;
}

static int find_by_addr(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct module *m = data;
    int index = m->index++;
    if (!in_load(info, m->addr, false))
        return 0;
    m->found = 1;
    m->index = index;
    m->bias = info->dlpi_addr;
    m->fname = info->dlpi_name != NULL ? info->dlpi_name : "";
    read_build_id(info, m);
    return 1;
}

static int find_by_name(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct module *m = data;
    int index = m->index++;
    if (m->name == NULL ? index != 0
                        : (info->dlpi_name == NULL || strcmp(info->dlpi_name, m->name) != 0))
        return 0;
    m->found = 1;
    m->bias = info->dlpi_addr;
    read_build_id(info, m);
    m->exec_ok = in_load(info, m->bias + m->addr, true);
    return 1;
}

int mproc__fnref_encode(void (*fn)(void), void *buf, size_t cap, size_t *len)
{
    if (fn == NULL || buf == NULL || len == NULL)
        return -EINVAL;
    struct module m = {.addr = (uintptr_t)fn};
    mproc__sys_dl_iterate(find_by_addr, &m);
    if (!m.found)
        return -ENOENT; /* not in any loaded module (a JIT buffer, a bad pointer) */
    bool main_prog = m.index == 0;
    size_t name_len = main_prog ? 0 : strlen(m.fname);
    if (name_len > UINT16_MAX)
        return -ENAMETOOLONG;
    size_t need = HEADER + m.id_len + name_len;
    *len = need;
    if (need > cap)
        return -MPROC_ETOOSMALL;
    unsigned char *p = buf;
    uint32_t magic = FNREF_MAGIC;
    uint16_t nl = (uint16_t)name_len;
    uint64_t off = (uint64_t)((uintptr_t)fn - m.bias);
    memcpy(p, &magic, 4);
    memcpy(p + 4, &nl, 2);
    p[6] = (unsigned char)m.id_len;
    p[7] = main_prog ? FLAG_MAIN : 0;
    memcpy(p + 8, &off, 8);
    memcpy(p + HEADER, m.id, m.id_len);
    if (name_len > 0)
        memcpy(p + HEADER + m.id_len, m.fname, name_len);
    return 0;
}

int mproc__fnref_decode(const void *buf, size_t len, void (**fn)(void))
{
    if (buf == NULL || fn == NULL || len < HEADER)
        return -EINVAL;
    const unsigned char *p = buf;
    uint32_t magic;
    uint16_t nl;
    uint64_t off;
    memcpy(&magic, p, 4);
    memcpy(&nl, p + 4, 2);
    memcpy(&off, p + 8, 8);
    size_t id_len = p[6];
    unsigned flags = p[7];
    if (magic != FNREF_MAGIC || id_len > MAX_ID || (flags & ~FLAG_MAIN) != 0 ||
        len != HEADER + id_len + nl || ((flags & FLAG_MAIN) != 0) != (nl == 0))
        return -EINVAL;
    char name[4096];
    if (nl >= sizeof name)
        return -ENAMETOOLONG;
    memcpy(name, p + HEADER + id_len, nl);
    name[nl] = '\0';
    struct module m = {.addr = (uintptr_t)off, .name = (flags & FLAG_MAIN) ? NULL : name};
    mproc__sys_dl_iterate(find_by_name, &m);
    if (!m.found)
        return -ENOENT;
    if (id_len > 0 && m.id_len > 0 && (id_len != m.id_len || memcmp(m.id, p + HEADER, id_len) != 0))
        return -ESTALE; /* same name, another build */
    if (!m.exec_ok)
        return -EFAULT;
    *fn = (void (*)(void))(m.bias + (uintptr_t)off);
    return 0;
}

/* ---- the per-thread cache ------------------------------------------------------------ */

struct generation {
    unsigned long long adds, subs;
    bool known;
};

static int first_module(struct dl_phdr_info *info, size_t size, void *data)
{
    struct generation *g = data;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        g->adds = info->dlpi_adds;
        g->subs = info->dlpi_subs;
        g->known = true;
    }
    return 1; /* the counters are the same in every entry: one is enough */
}

static __thread struct {
    mproc_task_fn fn;
    struct generation gen;
    uint32_t len;
    unsigned char ref[MPROC__FNREF_MAX];
} cache;

int mproc__fnref_cached(mproc_task_fn fn, unsigned char *buf, size_t cap, uint32_t *len)
{
    struct generation g = {0};
    mproc__sys_dl_iterate(first_module, &g);
    if (fn != NULL && g.known && cache.fn == fn && cache.gen.adds == g.adds &&
        cache.gen.subs == g.subs) {
        if (cache.len > cap)
            return -ENAMETOOLONG;
        memcpy(buf, cache.ref, cache.len);
        *len = cache.len;
        return 0;
    }
    size_t n;
    int rc = mproc__fnref_encode((void (*)(void))fn, buf, cap, &n);
    if (rc < 0)
        return rc == -MPROC_ETOOSMALL ? -ENAMETOOLONG : rc;
    *len = (uint32_t)n;
    cache.fn = NULL;
    if (g.known && n <= sizeof cache.ref) {
        memcpy(cache.ref, buf, n);
        cache.len = (uint32_t)n;
        cache.gen = g;
        cache.fn = fn;
    }
    return 0;
}

int mproc_task_id(mproc_task_fn fn, void *buf, size_t cap, size_t *len)
{
    if (fn == NULL || len == NULL || (buf == NULL && cap > 0))
        return -EINVAL;
    unsigned char none[1]; /* buf NULL, cap 0: only the size is asked */
    return mproc__fnref_encode((void (*)(void))fn, buf != NULL ? buf : none, cap, len);
}

size_t mproc__fnref_main_build(unsigned char *id, size_t cap)
{
    struct module m = {.name = NULL};
    mproc__sys_dl_iterate(find_by_name, &m);
    if (!m.found || m.id_len > cap)
        return 0;
    memcpy(id, m.id, m.id_len);
    return m.id_len;
}
