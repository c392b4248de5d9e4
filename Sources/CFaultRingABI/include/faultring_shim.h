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

#endif /* FAULTRING_SHIM_H */
