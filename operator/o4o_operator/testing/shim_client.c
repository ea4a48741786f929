/* The client side of shim_server.py: one shimmed command, acted out by the sandbox's fork server.
 *
 * Usage: shim_client SOCKET COMMAND [ARGS...]
 * Sends "u32 length" then NUL-terminated fields (argc, argv..., envc, env..., cwd, fdc, fd numbers...), with
 * every file descriptor this process has open (stdin, stdout, stderr, and any other: a bash process
 * substitution passes /dev/fd/63) sent along (SCM_RIGHTS) on the first bytes, to be given the same numbers in
 * the command; then waits for the command's exit status (i32) and exits with it. 127 with a message when the
 * server cannot be reached.
 * Must not: interpret the command in any way.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static char *buffer;
static size_t used, capacity;

static void append(const char *bytes, size_t length) {
    if (used + length > capacity) {
        capacity = (used + length) * 2 + 4096;
        buffer = realloc(buffer, capacity);
        if (buffer == NULL) { perror("shim_client"); exit(127); }
    }
    memcpy(buffer + used, bytes, length);
    used += length;
}

static void field(const char *text) { append(text, strlen(text) + 1); }

#define MAX_FDS 250

static void number(long value) {
    char digits[32];
    snprintf(digits, sizeof digits, "%ld", value);
    field(digits);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: shim_client SOCKET COMMAND [ARGS...]\n"); return 127; }
    int connection = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (connection < 0 || strlen(argv[1]) >= sizeof address.sun_path) { perror("shim_client"); return 127; }
    strcpy(address.sun_path, argv[1]);
    if (connect(connection, (struct sockaddr *)&address, sizeof address) != 0) {
        fprintf(stderr, "shim_client: the sandbox's shim server at %s: %s\n", argv[1], strerror(errno));
        return 127;
    }
    number(argc - 2);
    for (int i = 2; i < argc; i++) field(argv[i]);
    long envc = 0;
    for (char **entry = environ; *entry != NULL; entry++) envc++;
    number(envc);
    for (char **entry = environ; *entry != NULL; entry++) field(*entry);
    char cwd[4096];
    field(getcwd(cwd, sizeof cwd) != NULL ? cwd : "/");
    int fds[MAX_FDS];
    int fdc = 0;
    DIR *open_fds = opendir("/proc/self/fd");
    if (open_fds == NULL) { perror("shim_client: /proc/self/fd"); return 127; }
    for (struct dirent *entry; (entry = readdir(open_fds)) != NULL;) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        int fd = atoi(entry->d_name);
        if (fd == connection || fd == dirfd(open_fds) || fdc == MAX_FDS) continue;
        fds[fdc++] = fd;
    }
    closedir(open_fds);
    number(fdc);
    for (int i = 0; i < fdc; i++) number(fds[i]);

    uint32_t length = (uint32_t)used;
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec header = {.iov_base = &length, .iov_len = sizeof length};
    struct msghdr message = {.msg_iov = &header, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof control};
    struct cmsghdr *rights = CMSG_FIRSTHDR(&message);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(fdc * sizeof(int));
    message.msg_controllen = CMSG_SPACE(fdc * sizeof(int));
    memcpy(CMSG_DATA(rights), fds, fdc * sizeof(int));
    if (sendmsg(connection, &message, 0) != (ssize_t)sizeof length) { perror("shim_client: send"); return 127; }
    for (size_t sent = 0; sent < used;) {
        ssize_t now = write(connection, buffer + sent, used - sent);
        if (now < 0 && errno == EINTR) continue;
        if (now <= 0) { perror("shim_client: send"); return 127; }
        sent += (size_t)now;
    }
    int32_t status;
    size_t got = 0;
    while (got < sizeof status) {
        ssize_t now = read(connection, (char *)&status + got, sizeof status - got);
        if (now < 0 && errno == EINTR) continue;
        if (now <= 0) { fprintf(stderr, "shim_client: the shim server closed the connection\n"); return 127; }
        got += (size_t)now;
    }
    return status & 0xFF;
}
