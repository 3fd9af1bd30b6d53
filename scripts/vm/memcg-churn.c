/*
 * memcg-churn: the lab's leak maker (guest side, built static by scripts/vm-test.sh with
 * `gcc -static -O2`). Creates memory cgroups under PARENT one after another, charges each
 * with one page, and removes it, so that every removed memcg stays "dying". Stops when mkdir
 * fails (id exhaustion: ENOSPC or ENOMEM) or after MAX memcgs.
 *
 *   memcg-churn hold BYTES READYFILE   (the repair scenarios' anonymous-memory holder)
 *   memcg-churn pagecache ROOT PARENT FILE MAX
 *       for each memcg: move in, read one never-read page of a sparse file on a real
 *       filesystem (one clean page-cache page charged to it), move back to ROOT, rmdir.
 *       On kernels >= 4.8 this pins the memcg (css) but NOT its id: the id is released at
 *       offline (commit 73f576c04b94), so mkdir never fails this way.
 *   memcg-churn swap ROOT PARENT - MAX
 *       in batches of 256: create the memcgs, touch one anonymous page of a private mapping
 *       from inside each, move back to ROOT, page the batch out with MADV_PAGEOUT, then
 *       write memory.force_empty of each memcg whose page is still resident (in the swap
 *       cache) until mincore() says none is (really on swap, with the memcgs still online),
 *       then rmdir them. Each swap entry keeps a reference on its memcg's id (with
 *       swap accounting on), so the ids stay taken. Needs active swap. After the final line
 *       the process stays alive, holding the mapping (and so the ids), until killed.
 *
 * Prints progress lines and, at the end, exactly one line
 *   CHURN made=N mkdir_errno=NAME(num)|none rmdir_failures=N seconds=S
 * where `made` counts memcgs that were created, charged and removed (all of them dying).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *errname(int e)
{
    switch (e) {
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EEXIST: return "EEXIST";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

static int write_pid(const char *path, const char *pid, size_t len)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, pid, len);
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)len ? 0 : -1;
}

static int enter(const char *cg, const char *pid, size_t plen)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/cgroup.procs", cg);
    return write_pid(p, pid, plen);
}

#define BATCH 256

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "hold") == 0) {
        /* memcg-churn hold BYTES READYFILE: fault in BYTES of anonymous memory (charged to
         * this task's memcg), create READYFILE, then sleep until killed. */
        size_t len = (size_t)atol(argv[2]);
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("mmap");
            return 2;
        }
        memset(m, 'a', len);
        int r = open(argv[3], O_WRONLY | O_CREAT, 0644);
        if (r >= 0)
            close(r);
        for (;;)
            pause();
    }
    if (argc != 6) {
        fprintf(stderr, "usage: %s pagecache|swap ROOT PARENT FILE MAX\n", argv[0]);
        return 2;
    }
    int swapmode = strcmp(argv[1], "swap") == 0;
    const char *root = argv[2], *parent = argv[3], *file = argv[4];
    long max = atol(argv[5]);
    char pid[32], path[4096];
    size_t plen = (size_t)snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    long pg = sysconf(_SC_PAGESIZE);
    int fd = -1;
    char *map = NULL;
    unsigned char *vec = NULL;

    if (swapmode) {
        map = mmap(NULL, (size_t)(max + 1) * pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        vec = malloc(BATCH);
        if (map == MAP_FAILED || !vec) {
            perror("mmap");
            return 2;
        }
        /* One 4 KiB page per memcg: a transparent huge page would charge 512 of them to the
         * first memcg that touches its range. */
        if (madvise(map, (size_t)(max + 1) * pg, MADV_NOHUGEPAGE) < 0)
            perror("madvise(MADV_NOHUGEPAGE)");
    } else {
        fd = open(file, O_RDWR | O_CREAT, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)(max + 1) * pg) < 0) {
            perror(file);
            return 2;
        }
        /* No readahead: each read brings exactly the one page it asks for. */
        posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    }

    double t0 = now();
    long made = 0, rmdir_fail = 0, i = 0, pageout_rounds = 0, force_empties = 0;
    int mkerr = 0;
    char c;
    while (i < max && !mkerr) {
        long start = i, n = 0;
        long batch = swapmode ? BATCH : 1;
        for (; n < batch && i < max; n++, i++) {
            snprintf(path, sizeof path, "%s/c%ld", parent, i);
            if (mkdir(path, 0755) < 0) {
                mkerr = errno;
                break;
            }
            if (enter(path, pid, plen) < 0) {
                fprintf(stderr, "enter %s: %s\n", path, strerror(errno));
                return 2;
            }
            if (swapmode)
                map[i * pg] = 1;
            else if (pread(fd, &c, 1, (off_t)i * pg) < 0) {
                perror("pread");
                return 2;
            }
            if (enter(root, pid, plen) < 0) {
                fprintf(stderr, "leave to %s: %s\n", root, strerror(errno));
                return 2;
            }
        }
        if (swapmode && n > 0) {
            char *a = map + start * pg;
            size_t len = (size_t)n * pg;
            /* Start writing the batch to swap. The pages then sit in the swap cache, still
             * charged to their (online) memcgs; MADV_PAGEOUT cannot touch them again (their
             * ptes are swap entries now), so force_empty reclaims each memcg: the page is
             * freed and its swap entry records the memcg id (mem_cgroup_swapout). */
            if (madvise(a, len, MADV_PAGEOUT) < 0) {
                perror("madvise(MADV_PAGEOUT)");
                return 2;
            }
            pageout_rounds++;
            for (int round = 0;; round++) {
                int resident = 0;
                if (mincore(a, len, vec) < 0) {
                    perror("mincore");
                    return 2;
                }
                for (long k = 0; k < n; k++) {
                    if (!(vec[k] & 1))
                        continue;
                    resident++;
                    snprintf(path, sizeof path, "%s/c%ld/memory.force_empty", parent, start + k);
                    int fe = open(path, O_WRONLY);
                    if (fe >= 0) {
                        if (write(fe, "0", 1) < 0)
                            fprintf(stderr, "force_empty c%ld: %s\n", start + k, strerror(errno));
                        close(fe);
                    }
                    force_empties++;
                }
                if (!resident)
                    break;
                if (round > 2000) {
                    fprintf(stderr, "pages stay resident (%d of %ld): is swap on?\n", resident, n);
                    return 2;
                }
                if (round > 0)
                    usleep(round < 10 ? 1000 : 10000);
            }
        }
        for (long k = start; k < start + n; k++) {
            snprintf(path, sizeof path, "%s/c%ld", parent, k);
            if (rmdir(path) < 0) {
                rmdir_fail++;
                fprintf(stderr, "rmdir %s: %s\n", path, strerror(errno));
                continue;
            }
            made++;
            if (made % 8192 == 0) {
                printf("CHURN-PROGRESS made=%ld seconds=%.1f\n", made, now() - t0);
                fflush(stdout);
            }
        }
    }
    printf("CHURN made=%ld mkdir_errno=%s(%d) rmdir_failures=%ld seconds=%.1f pageout_calls=%ld force_empty=%ld\n",
           made, mkerr ? errname(mkerr) : "none", mkerr, rmdir_fail, now() - t0, pageout_rounds,
           force_empties);
    fflush(stdout);
    if (swapmode)
        for (;;)
            pause();
    return 0;
}
