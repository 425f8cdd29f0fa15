/* src/sys/relax.h - the processor hint for spin-wait loops.
 *
 * Header-only: a spin loop calls these a few hundred times in a row, so they must inline.
 */
#ifndef MPROC_SYS_RELAX_H
#define MPROC_SYS_RELAX_H

/* Tell the processor we are in a spin-wait loop: on x86 PAUSE (saves power, lets the
 * sibling hyper-thread run, avoids the memory-order flush when the loop exits), on ARM
 * YIELD; elsewhere a compiler barrier only. */
static inline void mproc__sys_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
