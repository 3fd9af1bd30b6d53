/*
 * memcg-event: another agent's memory-cgroup v1 usage-threshold watcher, for the runtime lab
 * (scripts/vm/scenarios/runtime.sh). It does what a monitoring agent or containerd's v1 shim
 * does on a container's memcg:
 *
 *   efd = eventfd(0, 0);
 *   ufd = open(MEMCG/memory.usage_in_bytes);
 *   write(open(MEMCG/cgroup.event_control), "<efd> <ufd> <threshold>");
 *
 * (Documentation/admin-guide/cgroup-v1/memory.rst, "Memory thresholds"), then blocks in
 * read(efd) and prints one line per signal:
 *
 *   EVENT <realtime s.ns> <boottime s.ns> count=<n> exists=<0|1>
 *
 * exists says whether MEMCG is a directory at that moment. The kernel signals an event once more
 * when the memcg goes offline after rmdir and then drops it (mm/memcontrol.c memcg_event_remove:
 * "Notify userspace the event is going away"), so after a repair's rmdir a watcher gets one
 * signal and then silence, even once a cgroup of the same path exists again. With "oom" instead
 * of a threshold it registers on memory.oom_control (what the v2 shim's epoller does).
 *
 * Usage: memcg-event MEMCG THRESHOLD_BYTES|oom   (runs until killed; "READY" once registered)
 *        memcg-event now                          (prints CLOCK_REALTIME s.us: busybox date has
 *                                                  no %N, the scenario's phase marks need it)
 * Build: gcc -static -O2 -Wall (scripts/vm-test.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path)
{
    fprintf(stderr, "memcg-event: %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

static int open_in(const char *dir, const char *file, int flags, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, file);
    return open(path, flags | O_CLOEXEC);
}

static double clock_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    char path[4096], line[128];
    struct stat st;
    int oom, efd, wfd, cfd;
    uint64_t n;

    if (argc == 2 && strcmp(argv[1], "now") == 0) {
        printf("%.6f\n", clock_s(CLOCK_REALTIME));
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: memcg-event MEMCG THRESHOLD_BYTES|oom\n");
        return 2;
    }
    oom = strcmp(argv[2], "oom") == 0;
    efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0)
        die("eventfd", "");
    wfd = open_in(argv[1], oom ? "memory.oom_control" : "memory.usage_in_bytes", O_RDONLY, path,
                  sizeof(path));
    if (wfd < 0)
        die("open", path);
    cfd = open_in(argv[1], "cgroup.event_control", O_WRONLY, path, sizeof(path));
    if (cfd < 0)
        die("open", path);
    if (oom)
        snprintf(line, sizeof(line), "%d %d", efd, wfd);
    else
        snprintf(line, sizeof(line), "%d %d %s", efd, wfd, argv[2]);
    if (write(cfd, line, strlen(line)) < 0)
        die("write", path);
    close(cfd);
    printf("READY %s %s\n", argv[1], argv[2]);
    fflush(stdout);
    for (;;) {
        if (read(efd, &n, sizeof(n)) != sizeof(n)) {
            if (errno == EINTR)
                continue;
            die("read", "eventfd");
        }
        printf("EVENT %.6f %.6f count=%llu exists=%d\n", clock_s(CLOCK_REALTIME),
               clock_s(CLOCK_BOOTTIME), (unsigned long long)n,
               stat(argv[1], &st) == 0 && S_ISDIR(st.st_mode));
        fflush(stdout);
    }
}
