/* An LD_PRELOAD shim for the disk-tier tests: while the file BREAKWATER_FAULT_FULL names
 * exists, positioned writes (pwrite, pwrite64) to files under BREAKWATER_FAULT_DIR fail with
 * ENOSPC, as they do on a full disk; everything else goes to the C library. Built by the
 * test with the machine's C compiler: `cc -shared -fPIC -o full-disk.so full-disk.c -ldl`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int full(int fd) {
    const char *dir = getenv("BREAKWATER_FAULT_DIR");
    const char *marker = getenv("BREAKWATER_FAULT_FULL");
    if (!dir || !marker || access(marker, F_OK) != 0)
        return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

static ssize_t forward(const char *name, int fd, const void *buf, size_t count, off_t offset) {
    if (full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    pwrite_fn real = (pwrite_fn)dlsym(RTLD_NEXT, name);
    return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    return forward("pwrite64", fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    return forward("pwrite", fd, buf, count, offset);
}
