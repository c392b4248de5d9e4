/* SPDX-License-Identifier: MIT */
/*
 * faultring_shim.h - the few system calls Swift cannot reach directly.
 *
 * glibc declares memfd_create and the F_ADD_SEALS constants only under
 * _GNU_SOURCE, and fcntl is variadic; defining _GNU_SOURCE in a header that
 * Swift imports clashes with SwiftGlibc, so the definition stays inside
 * shim.c and this header exposes plain functions. Each returns what the
 * system call returns (-1 with errno set on failure).
 */
#ifndef FAULTRING_SHIM_H
#define FAULTRING_SHIM_H

#include <stdint.h>

/** faultring_shim_memfd_create - memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING). */
int faultring_shim_memfd_create(const char *name);

/** faultring_shim_seal_size - add F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL. */
int faultring_shim_seal_size(int fd);

/** faultring_shim_get_seals - fcntl(fd, F_GET_SEALS). */
int faultring_shim_get_seals(int fd);

/** Seal bits as the kernel reports them (F_SEAL_*), for tests and inspect. */
int faultring_shim_seal_shrink(void);
int faultring_shim_seal_grow(void);
int faultring_shim_seal_seal(void);

/** faultring_shim_eventfd - eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
int faultring_shim_eventfd(void);

/** faultring_shim_set_cloexec - set or clear FD_CLOEXEC on fd. */
int faultring_shim_set_cloexec(int fd, int on);

/** faultring_shim_monotonic_ns - CLOCK_MONOTONIC in nanoseconds. */
uint64_t faultring_shim_monotonic_ns(void);

/**
 * faultring_shim_send_fds - sendmsg() of @len bytes with @nfds descriptors
 * attached as SCM_RIGHTS (MSG_NOSIGNAL). Return: bytes sent or -1.
 */
long faultring_shim_send_fds(int sock, const void *buf, unsigned long len, const int *fds, unsigned nfds);

/**
 * faultring_shim_recv_fds - recvmsg() into @buf with up to @max_fds
 * descriptors (MSG_CMSG_CLOEXEC). *@nfds gets how many arrived; *@flags gets
 * msg_flags (MSG_TRUNC: the message was larger than @len; MSG_CTRUNC: more
 * descriptors than room, the extra ones were closed by the kernel).
 * Return: the message's real length (may exceed @len with MSG_TRUNC), 0 at
 * end of stream, or -1.
 */
long faultring_shim_recv_fds(int sock, void *buf, unsigned long len, int *fds, unsigned max_fds, unsigned *nfds,
                             int *flags);

/** faultring_shim_msg_trunc / _ctrunc - the MSG_TRUNC / MSG_CTRUNC bits. */
int faultring_shim_msg_trunc(void);
int faultring_shim_msg_ctrunc(void);

/** faultring_shim_accept - accept4(fd, SOCK_CLOEXEC | SOCK_NONBLOCK). */
int faultring_shim_accept(int fd);

/** faultring_shim_peercred - SO_PEERCRED of a connected AF_UNIX socket. */
int faultring_shim_peercred(int sock, uint32_t *pid, uint32_t *uid, uint32_t *gid);

/**
 * faultring_shim_signalfd - block @signals (an array of @n signal numbers)
 * in the calling thread and return a non-blocking, close-on-exec signalfd
 * that reads them. Return: the fd or -1.
 */
int faultring_shim_signalfd(const int *signals, unsigned n);

/** faultring_shim_signalfd_signo - read one signal from a signalfd; its number, 0 if none, -1 on error. */
int faultring_shim_signalfd_signo(int fd);

#endif /* FAULTRING_SHIM_H */
