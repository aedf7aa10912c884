/* A disk whose flush takes longer, for benchmarks only.
 *
 * Loaded with LD_PRELOAD into a PostgreSQL server, it makes fsync and fdatasync
 * block their caller for SLOWFLUSH_US more microseconds after the real flush,
 * with the CPU idle, as a slower device does. On a disk that flushes fast, a
 * commit waits for the CPU, not for the flush; this brings back the regime of a
 * disk whose single-row commit runs at about 2,600/s. See docs/benchmarks.md.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static long delay_ns = -1;

static void wait_like_a_slower_disk(void)
{
    if (delay_ns < 0) {
        const char *us = getenv("SLOWFLUSH_US");
        delay_ns = us ? atol(us) * 1000L : 0;
    }
    if (delay_ns > 0) {
        struct timespec t = {delay_ns / 1000000000L, delay_ns % 1000000000L};
        nanosleep(&t, NULL);
    }
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int result = real(fd);
    wait_like_a_slower_disk();
    return result;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int result = real(fd);
    wait_like_a_slower_disk();
    return result;
}
