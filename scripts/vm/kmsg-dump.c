/*
 * kmsg-dump: print the /dev/kmsg records with sequence number > SEQ, each line prefixed with
 * PREFIX, without blocking (O_NONBLOCK: EAGAIN is the end; EPIPE means records were overwritten
 * and the next read goes on). Prints "KMSG-LAST <seq>" at the end. The kernel lab harvests the
 * lines into the memory doctor's parser fixtures (tests/fixtures/oom/lab-*.kmsg).
 *
 *   kmsg-dump PREFIX SEQ
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char buf[8192];
    long long after, seq, last = -1;
    ssize_t n;
    int fd;
    char *line, *save;

    if (argc != 3) {
        fprintf(stderr, "usage: kmsg-dump PREFIX SEQ\n");
        return 2;
    }
    after = atoll(argv[2]);
    fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        perror("kmsg-dump: /dev/kmsg");
        return 1;
    }
    for (;;) {
        /* one record per read(2); a buffer below the record's size gives EINVAL */
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0 && errno == EPIPE)
            continue;
        if (n <= 0)
            break;
        buf[n] = 0;
        seq = -1;
        if (sscanf(buf, "%*d,%lld,", &seq) != 1 || seq <= after)
            continue;
        last = seq;
        for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            printf("%s %s\n", argv[1], line);
    }
    printf("KMSG-LAST %lld\n", last);
    close(fd);
    return 0;
}
