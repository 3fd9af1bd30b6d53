/*
 * hog: a task of chosen size for the memory doctor's OOM cases (scripts/vm/scenarios/oom.sh).
 *
 *   hog NAME MIB               name itself NAME (prctl PR_SET_NAME, what the kernel log prints),
 *                              touch MIB MiB of anonymous memory, print "HOG <pid> ready", then
 *                              sleep until killed.
 *   hog NAME 0 --until PID...  the OOM trigger: allocate and touch 1 MiB at a time until one of
 *                              PID... is gone (the OOM killer chose it), print "HOG killed <pid>"
 *                              and exit, freeing what it took. Run it at oom_score_adj -1000 so
 *                              the kernel never picks it (oom_badness: OOM_SCORE_ADJ_MIN is
 *                              unkillable) and the victim is chosen among the others at the sizes
 *                              the prediction saw.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static void touch(size_t mib)
{
    char *p;
    size_t i;

    if (mib == 0)
        return;
    p = mmap(NULL, mib * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "hog: mmap %zu MiB: %s\n", mib, strerror(errno));
        exit(1);
    }
    /* a distinct byte per page: no zero-page sharing, every page charged */
    for (i = 0; i < mib * MIB; i += 4096)
        p[i] = (char)(i >> 12 | 1);
}

/* gone: no such process, or a zombie (killed, not yet reaped by the scenario's shell) */
static int gone(pid_t pid)
{
    char path[64], buf[512], *r;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    r = strrchr(buf, ')');
    return r && r[1] == ' ' && (r[2] == 'Z' || r[2] == 'X');
}

int main(int argc, char **argv)
{
    int i, steps;

    if (argc < 3) {
        fprintf(stderr, "usage: hog NAME MIB [--until PID...]\n");
        return 2;
    }
    prctl(PR_SET_NAME, argv[1], 0, 0, 0);
    touch((size_t)atol(argv[2]));
    if (argc > 3 && strcmp(argv[3], "--until") == 0) {
        for (steps = 0; steps < 4096; steps++) {
            for (i = 4; i < argc; i++) {
                if (gone((pid_t)atoi(argv[i]))) {
                    printf("HOG killed %s after %d MiB\n", argv[i], steps);
                    return 0;
                }
            }
            touch(1);
        }
        printf("HOG no kill after %d MiB\n", steps);
        return 1;
    }
    printf("HOG %d ready\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
