/* tests/helpers/proc_fds.c - a child that reports the fds it was given.
 *
 * Prints every fd it has open, one per line (the directory fd it lists them with
 * excluded), and exits with their count. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 255;
    int self = dirfd(d), n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        printf("%s\n", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}
