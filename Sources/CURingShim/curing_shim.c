/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>

#include "curing_shim.h"

/* user_data of cancel requests: never reported to the caller. */
#define CURING_INTERNAL UINT64_MAX

struct curing {
	struct io_uring ring;
};

int curing_create(unsigned entries, struct curing **out)
{
	struct curing *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	int rc = io_uring_queue_init(entries, &r->ring, 0);
	if (rc < 0) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void curing_destroy(struct curing *r)
{
	if (!r)
		return;
	io_uring_queue_exit(&r->ring);
	free(r);
}

static struct io_uring_sqe *get_sqe(struct curing *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

int curing_poll(struct curing *r, int fd, uint64_t token)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, token);
	return 0;
}

int curing_cancel(struct curing *r, uint64_t token)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, token);
	io_uring_sqe_set_data64(sqe, CURING_INTERNAL);
	return 0;
}

int curing_wait(struct curing *r, int timeout_ms, struct curing_event *out, unsigned max)
{
	struct io_uring_cqe *cqe = NULL;
	int rc = io_uring_submit(&r->ring);
	if (rc < 0)
		return rc;
	if (timeout_ms < 0) {
		rc = io_uring_wait_cqe(&r->ring, &cqe);
	} else {
		struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
						.tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
		rc = io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts);
	}
	if (rc == -ETIME || rc == -EINTR)
		return 0;
	if (rc < 0)
		return rc;
	unsigned n = 0;
	unsigned head;
	unsigned seen = 0;
	io_uring_for_each_cqe(&r->ring, head, cqe) {
		seen++;
		if (cqe->user_data == CURING_INTERNAL)
			continue;
		if (n == max) {
			seen--;
			break;
		}
		out[n].token = cqe->user_data;
		out[n].result = cqe->res;
		out[n].reserved = 0;
		n++;
	}
	io_uring_cq_advance(&r->ring, seen);
	return (int)n;
}
