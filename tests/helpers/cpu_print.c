/* tests/helpers/cpu_print.c - print "logical physical usable" on one line, exit 0.
 * Run under `taskset -c 0` by test_cpu to check the counts from outside. */
#include "mproc.h"

#include <stdio.h>

int main(void)
{
    mproc_cpu_counts c;
    if (mproc_cpu_counts_get(&c) < 0)
        return 1;
    printf("%d %d %d\n", c.logical, c.physical, c.usable);
    return 0;
}
