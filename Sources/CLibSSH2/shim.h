#ifndef COORDINATOR_CLIBSSH2_SHIM_H
#define COORDINATOR_CLIBSSH2_SHIM_H
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>

// Function-like macros do not import into Swift: these are their expansions.
static inline LIBSSH2_SESSION *coord_session_init(void) { return libssh2_session_init_ex(NULL, NULL, NULL, NULL); }
static inline LIBSSH2_CHANNEL *coord_channel_open_session(LIBSSH2_SESSION *s) {
    return libssh2_channel_open_ex(s, "session", sizeof("session") - 1, LIBSSH2_CHANNEL_WINDOW_DEFAULT, LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
}
static inline int coord_channel_exec(LIBSSH2_CHANNEL *c, const char *cmd) {
    return libssh2_channel_process_startup(c, "exec", sizeof("exec") - 1, cmd, (unsigned int)strlen(cmd));
}
static inline int coord_session_disconnect(LIBSSH2_SESSION *s, const char *why) {
    return libssh2_session_disconnect_ex(s, SSH_DISCONNECT_BY_APPLICATION, why, "");
}
static inline LIBSSH2_CHANNEL *coord_channel_direct_tcpip(LIBSSH2_SESSION *s, const char *host, int port) {
    return libssh2_channel_direct_tcpip_ex(s, host, port, "127.0.0.1", 22);
}
static inline int coord_fcntl_nonblock(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}
/* Grows a pipe's kernel buffer (Linux F_SETPIPE_SZ); returns the new size or -1. */
static inline int coord_set_pipe_size(int fd, int size) {
#ifdef F_SETPIPE_SZ
    return fcntl(fd, F_SETPIPE_SZ, size);
#else
    return fcntl(fd, 1031, size);
#endif
}
static inline int coord_fcntl_block(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}
static inline int coord_errno(void) { return errno; }
#endif
