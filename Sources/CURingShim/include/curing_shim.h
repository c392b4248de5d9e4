/* SPDX-License-Identifier: MIT */
/*
 * curing_shim.h - the few io_uring operations the faultring event loop
 * uses, as plain functions over an opaque handle.
 *
 * liburing.h defines _GNU_SOURCE and _XOPEN_SOURCE; imported into Swift it
 * clashes with SwiftGlibc's fd_set, and only on a clean build. So liburing.h
 * is included by curing_shim.c alone, and this header exposes nothing of it.
 * Every function returns 0 (or a count) on success and -errno on failure,
 * like liburing itself.
 */
#ifndef CURING_SHIM_H
#define CURING_SHIM_H

#include <stdint.h>

/** struct curing - an io_uring instance (opaque). */
struct curing;

/**
 * struct curing_event - one completion.
 * @token:  the token given when the operation was queued
 * @result: the operation's result (poll: revents; < 0: -errno)
 */
struct curing_event {
	uint64_t token;
	int32_t result;
	uint32_t reserved;
};

/**
 * curing_create - set up a ring of @entries submission slots.
 * Return: 0 and *@out set, or -errno (-EPERM or -ENOSYS where io_uring is
 * disabled or filtered, as in many containers).
 */
int curing_create(unsigned entries, struct curing **out);

/** curing_destroy - tear the ring down; pending operations are dropped. */
void curing_destroy(struct curing *ring);

/**
 * curing_poll - queue a one-shot readiness poll (POLLIN) on @fd; its
 * completion carries @token. Re-queue after each completion to keep watching.
 * Return: 0 or -errno (-EBUSY if the submission queue is full even after a
 * submit).
 */
int curing_poll(struct curing *ring, int fd, uint64_t token);

/**
 * curing_cancel - cancel the poll queued with @token. Its completion (with
 * -ECANCELED) still arrives and must be ignored by the caller.
 */
int curing_cancel(struct curing *ring, uint64_t token);

/**
 * curing_wait - submit what is queued, then wait up to @timeout_ms (-1:
 * forever) for at least one completion, and copy up to @max of them out.
 * Completions of cancel requests themselves are not reported.
 * Return: the number copied (0 on timeout), or -errno.
 */
int curing_wait(struct curing *ring, int timeout_ms, struct curing_event *out, unsigned max);

#endif /* CURING_SHIM_H */
