/* src/graph/hash.c - the 128-bit hash of the task graph's fingerprints.
 *
 * DESIGN. A fingerprint only has to tell "the same" from "changed" for one user's jobs:
 * no adversary, so a non-cryptographic hash is enough, and 128 bits make an accidental
 * collision between a job's old and new inputs out of the question. Two 64-bit lanes
 * take each 8-byte word through a multiply-xorshift mixer (the finalizer of a good 64-bit
 * hash) with different constants, and each lane feeds the other; the length goes into
 * the end, so "ab" + "c" and "a" + "bc" differ only when framed by the caller (the graph
 * frames every field with its length, see gh_str). Streaming, so files are hashed in
 * blocks without being read whole.
 */
#include "graph/graph.h"

#include <string.h>

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= UINT64_C(0x7fb5d329728ea185);
    x ^= x >> 27;
    x *= UINT64_C(0x81dadef4bc2dd44d);
    x ^= x >> 33;
    return x;
}

static void word(struct gh *h, uint64_t w)
{
    h->a = mix(h->a ^ w) + h->b;
    h->b = mix(h->b + w + UINT64_C(0x9e3779b97f4a7c15)) ^ h->a;
}

void mproc__gh_init(struct gh *h)
{
    *h = (struct gh){.a = UINT64_C(0x243f6a8885a308d3), .b = UINT64_C(0x13198a2e03707344)};
}

void mproc__gh_add(struct gh *h, const void *data, size_t len)
{
    const unsigned char *p = data;
    h->len += len;
    while (len > 0) {
        size_t take = 8 - h->nbuf < len ? 8 - h->nbuf : len;
        memcpy(h->buf + h->nbuf, p, take);
        h->nbuf += take;
        p += take;
        len -= take;
        if (h->nbuf == 8) {
            uint64_t w = 0;
            for (int i = 0; i < 8; i++)
                w |= (uint64_t)h->buf[i] << (8 * i);
            word(h, w);
            h->nbuf = 0;
        }
    }
}

void mproc__gh_u64(struct gh *h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    mproc__gh_add(h, b, sizeof b);
}

void mproc__gh_str(struct gh *h, const void *data, size_t len)
{
    mproc__gh_u64(h, len);
    mproc__gh_add(h, data, len);
}

void mproc__gh_end(struct gh *h, unsigned char out[GH_LEN])
{
    uint64_t w = 0;
    for (size_t i = 0; i < h->nbuf; i++)
        w |= (uint64_t)h->buf[i] << (8 * i);
    word(h, w ^ ((uint64_t)h->nbuf << 56));
    word(h, h->len);
    uint64_t a = mix(h->a + h->b), b = mix(h->b ^ a);
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(a >> (8 * i));
        out[8 + i] = (unsigned char)(b >> (8 * i));
    }
}
