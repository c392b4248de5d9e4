/* SPDX-License-Identifier: MIT */
/*
 * faultring_sys.h - the few system calls Swift cannot reach directly.
 *
 * glibc declares memfd_create, accept4 and the F_ADD_SEALS constants only
 * under _GNU_SOURCE, and fcntl is variadic; defining _GNU_SOURCE in a header
 * that Swift imports clashes with SwiftGlibc, so the definition stays inside
 * sys.c and this header exposes plain functions.
 *
 * One error convention, liburing's: a function returns a non-negative value
 * (a descriptor, a count, 0) on success and -errno on failure. errno itself
 * is never the channel, so a caller cannot read a stale one.
 */
#ifndef FAULTRING_SYS_H
#define FAULTRING_SYS_H

#include <stdint.h>

/** faultring_sys_memfd_create - memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING). Return: fd or -errno. */
int faultring_sys_memfd_create(const char *name);

/**
 * faultring_sys_seal_size - add F_SEAL_SHRINK | F_SEAL_GROW, and F_SEAL_SEAL if @final.
 * A region that will get F_SEAL_FUTURE_WRITE once its owner has mapped it is not final yet.
 * Return: 0 or -errno.
 */
int faultring_sys_seal_size(int fd, int final);

/**
 * faultring_sys_seal_future_write - add F_SEAL_FUTURE_WRITE | F_SEAL_SEAL: from now on nobody can
 * write(2) the file or map it writable (shared), through any descriptor, a reopened
 * /proc/self/fd/N included; mappings that were already writable stay so.
 * Return: 0 or -errno (EINVAL before Linux 5.1).
 */
int faultring_sys_seal_future_write(int fd);

/** faultring_sys_seal_future_write_bit - the F_SEAL_FUTURE_WRITE bit, for checks. */
int faultring_sys_seal_future_write_bit(void);

/** faultring_sys_get_seals - fcntl(fd, F_GET_SEALS). Return: the seal bits or -errno. */
int faultring_sys_get_seals(int fd);

/**
 * faultring_sys_is_tmpfs - whether @fd's file lives on tmpfs (a plain memfd),
 * not hugetlbfs (a MFD_HUGETLB memfd, which can have holes punched under a
 * shrink seal). Return: 1, 0, or -errno from fstatfs.
 */
int faultring_sys_is_tmpfs(int fd);

/** Seal bits as the kernel reports them (F_SEAL_*), for tests and inspect. */
int faultring_sys_seal_shrink(void);
int faultring_sys_seal_grow(void);
int faultring_sys_seal_seal(void);

/** faultring_sys_terminal_columns - the width of the terminal on @fd (TIOCGWINSZ). Return: columns or -errno. */
int faultring_sys_terminal_columns(int fd);

/**
 * faultring_sys_die_with_parent - prctl(PR_SET_PDEATHSIG, @sig): the kernel sends @sig to this
 * process when the thread that started it exits, so a helper process cannot outlive its runner.
 * Return: 0 or -errno.
 */
int faultring_sys_die_with_parent(int sig);

/**
 * faultring_sys_doorbell_pair - socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC):
 * a doorbell whose two sides are two open file descriptions, so nothing one side does to its end
 * (clearing O_NONBLOCK, filling or draining it) can make a call on the other end block.
 * Return: 0 with @fds filled, or -errno.
 */
int faultring_sys_doorbell_pair(int fds[2]);

/** faultring_sys_eventfd - eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). Return: fd or -errno. */
int faultring_sys_eventfd(void);

/** faultring_sys_set_cloexec - set (@on != 0) or clear FD_CLOEXEC on @fd. Return: 0 or -errno. */
int faultring_sys_set_cloexec(int fd, int on);

/** faultring_sys_pipe - pipe2(@ends, O_CLOEXEC): @ends[0] reads, @ends[1] writes. Return: 0 or -errno. */
int faultring_sys_pipe(int ends[2]);

/** faultring_sys_timerfd - timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC). Return: fd or -errno. */
int faultring_sys_timerfd(void);

/**
 * faultring_sys_timerfd_arm - arm @fd to expire once at @deadline_ns on
 * CLOCK_MONOTONIC (absolute, TFD_TIMER_ABSTIME); @deadline_ns 0 disarms it.
 * A deadline already past expires at once. Return: 0 or -errno.
 */
int faultring_sys_timerfd_arm(int fd, uint64_t deadline_ns);

/**
 * faultring_sys_timerfd_drain - read the expiration count without blocking.
 * Return: expirations since the last read (0 if none), or -errno.
 */
long faultring_sys_timerfd_drain(int fd);

/**
 * faultring_sys_cpu_relax - the spin-wait hint (x86 PAUSE, arm64 YIELD):
 * a spinning thread yields pipeline resources to its SMT sibling, which on
 * a VM is often the very thread it waits for.
 */
void faultring_sys_cpu_relax(void);

/** faultring_sys_monotonic_ns - CLOCK_MONOTONIC in nanoseconds (cannot fail on Linux). */
uint64_t faultring_sys_monotonic_ns(void);

/**
 * faultring_sys_send_fds - sendmsg() of @len bytes with @nfds (at most 8)
 * descriptors attached as SCM_RIGHTS (MSG_NOSIGNAL: a dead peer is -EPIPE,
 * not SIGPIPE). Blocks only if @sock is a blocking socket.
 * Return: bytes sent, or -errno (-EINVAL for more than 8 descriptors).
 */
long faultring_sys_send_fds(int sock, const void *buf, unsigned long len, const int *fds, unsigned nfds);

/**
 * faultring_sys_recv_fds - recvmsg() into @buf with up to @max_fds
 * descriptors (MSG_CMSG_CLOEXEC). *@nfds gets how many
 * arrived; *@flags gets msg_flags (MSG_TRUNC: the message was larger than
 * @len; MSG_CTRUNC: more descriptors than room, the extra ones were closed by
 * the kernel or by this function).
 * Return: the message's real length (may exceed @len with MSG_TRUNC), 0 at
 * end of stream, or -errno (-EAGAIN on a non-blocking socket with nothing waiting).
 */
long faultring_sys_recv_fds(int sock, void *buf, unsigned long len, int *fds, unsigned max_fds, unsigned *nfds,
                            int *flags);

/** faultring_sys_msg_trunc / _ctrunc - the MSG_TRUNC / MSG_CTRUNC bits. */
int faultring_sys_msg_trunc(void);
int faultring_sys_msg_ctrunc(void);

/** faultring_sys_accept - accept4(fd, SOCK_CLOEXEC | SOCK_NONBLOCK). Return: fd or -errno (-EAGAIN: none waiting). */
int faultring_sys_accept(int fd);

/** faultring_sys_peercred - SO_PEERCRED of a connected AF_UNIX socket. Return: 0 or -errno. */
int faultring_sys_peercred(int sock, uint32_t *pid, uint32_t *uid, uint32_t *gid);

/**
 * faultring_sys_signalfd - block @signals (an array of @n signal numbers)
 * in the calling thread and return a non-blocking, close-on-exec signalfd
 * that reads them. Return: the fd or -errno.
 */
int faultring_sys_signalfd(const int *signals, unsigned n);

/** faultring_sys_signalfd_signo - read one signal from a signalfd: its number, 0 if none is pending, or -errno. */
int faultring_sys_signalfd_signo(int fd);

#endif /* FAULTRING_SYS_H */
