/* SPDX-License-Identifier: MIT */
/* fake_server.c - see fake_server.h. Runs in a forked child; exits when done. */
#define _GNU_SOURCE
#include "fake_server.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faultring_abi.h"
#include "faultring_protocol.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static const char *const names[FAKE_MODES] = {
	"valid queue that never negotiates", "three descriptors", "five descriptors", "unsealed producer region",
	"writable producer region", "consumer region not a memfd", "stream doorbell", "truncated ATTACH reply",
	"size disagrees with packet", "bad magic", "ring bigger than its region", "wrong reply id", "no reply",
	"short HELLO reply", "zero-length packet", "stale reply first", "server dies in negotiation",
	"running queue, header rewritten",
};

const char *fake_mode_name(enum fake_mode mode)
{
	return mode < FAKE_MODES ? names[mode] : "?";
}

static void reply(int fd, const struct faultring_msg_header *request, const void *payload, size_t len,
		  const int *fds, int nfds, int size_delta)
{
	struct faultring_msg_header h = { request->id, request->command, (uint32_t)(sizeof h + len + size_delta),
					  FAULTRING_MSG_REPLY, 0 };
	struct iovec iov[2] = { { &h, sizeof h }, { (void *)(uintptr_t)payload, len } };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} control;
	struct msghdr m = { 0 };
	m.msg_iov = iov;
	m.msg_iovlen = len ? 2 : 1;
	if (nfds) {
		m.msg_control = control.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0)
		_exit(3);
}

static int region(const char *name, size_t size, int seals)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		_exit(4);
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)
		_exit(5);
	return fd;
}

/* FAKE_RUNNING keeps a writable mapping of its header, made before the seal. */
static struct faultring_producer_header *running;

/* The four descriptors of an 8-entry queue, spoiled as @mode says. */
static void make_queue(enum fake_mode mode, int fds[5])
{
	enum { ENTRIES = 8, SIZE = 8192 };
	int producer = region("fake-producer", SIZE, 0);
	struct faultring_producer_header *h =
		(struct faultring_producer_header *)mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, producer, 0);
	if (h == MAP_FAILED)
		_exit(6);
	h->magic = mode == FAKE_BAD_MAGIC ? 0x4141414141414141ULL : FAULTRING_PRODUCER_MAGIC;
	h->layout_version = FAULTRING_LAYOUT_VERSION;
	h->header_size = sizeof *h;
	h->max_abi = FAULTRING_ABI_V2;
	h->entry_size = FAULTRING_ENTRY_SIZE;
	h->entry_count = mode == FAKE_RING_TOO_BIG ? 1u << 20 : ENTRIES;
	h->ring_offset = 4096;
	h->response_slot_size = FAULTRING_RESPONSE_SLOT_SIZE;
	h->response_count = ENTRIES;
	h->response_ring_offset = 4096;
	h->state = FAULTRING_STATE_STARTING;
	h->producer_region_size = SIZE;
	h->consumer_region_size = SIZE;
	if (mode == FAKE_RUNNING) {
		struct faultring_v2_fault *r = (struct faultring_v2_fault *)(void *)((char *)h + 4096);
		r->type = FAULTRING_FAULT_PAGE_REQ;
		r->flags = FAULTRING_V2_LAST_PAGE;
		r->device_id = 1;
		r->cookie = 0xC0FFEE;
		h->abi = FAULTRING_ABI_V2;
		h->state = FAULTRING_STATE_RUNNING;
		h->fault_prod.value = 1;
		running = h;
	} else {
		munmap(h, SIZE);
	}
	if (mode != FAKE_UNSEALED &&
	    fcntl(producer, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
		_exit(7);
	if (mode == FAKE_WRITABLE) {
		fds[0] = producer;
	} else {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", producer);
		fds[0] = open(path, O_RDONLY | O_CLOEXEC);
		close(producer);
	}
	if (mode == FAKE_NOT_MEMFD) {
		int p[2];
		if (pipe(p) < 0)
			_exit(8);
		fds[1] = p[0];
	} else {
		fds[1] = region("fake-consumer", SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	}
	for (int i = 2; i < 5; i++) {
		int pair[2];
		int type = mode == FAKE_STREAM_DOORBELL && i == 2 ? SOCK_STREAM : SOCK_DGRAM;
		if (socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, pair) < 0)
			_exit(9);
		fds[i] = pair[0];
	}
}

static void serve(int fd, enum fake_mode mode)
{
	uint8_t buf[FAULTRING_MSG_MAX];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < (ssize_t)sizeof(struct faultring_msg_header))
			_exit(0);
		struct faultring_msg_header request;
		memcpy(&request, buf, sizeof request);
		if (request.command == FAULTRING_CMD_HELLO) {
			const char *caps = "{\"protocolVersion\":1,\"entryCount\":8,\"responseCount\":8,\"maxDevicesPerAttach\":64}";
			if (mode == FAKE_HELLO_SHORT) {
				if (send(fd, "short", 5, MSG_NOSIGNAL) < 0)
					_exit(3);
			} else {
				reply(fd, &request, caps, strlen(caps), NULL, 0, 0);
			}
			continue;
		}
		if (request.command == FAULTRING_CMD_STATS && running) {
			running->ring_offset = 0x40000000u;
			running->response_ring_offset = 0x10000u;
			running->entry_count = 1u << 20;
			reply(fd, &request, "{}", 2, NULL, 0, 0);
			continue;
		}
		if (request.command == FAULTRING_CMD_BYE)
			_exit(0);
		if (request.command != FAULTRING_CMD_ATTACH || mode == FAKE_NO_REPLY)
			continue;
		if (mode == FAKE_ZERO_LENGTH) {
			if (send(fd, "", 0, MSG_NOSIGNAL) < 0)
				_exit(3);
			continue;
		}
		int fds[5];
		make_queue(mode, fds);
		struct faultring_msg_attach_reply r = { 1, 8, 8, 1 };
		size_t len = mode == FAKE_TRUNCATED ? 8 : sizeof r;
		int nfds = mode == FAKE_THREE_FDS ? 3 : mode == FAKE_FIVE_FDS ? 5 : 4;
		if (mode == FAKE_WRONG_ID)
			request.id ^= 0x55;
		if (mode == FAKE_STALE_REPLY) {
			struct faultring_msg_header stale = request;
			stale.id--;
			reply(fd, &stale, &r, len, fds, nfds, 0);
		}
		reply(fd, &request, &r, len, fds, nfds, mode == FAKE_SIZE_MISMATCH ? 4 : 0);
		for (int i = 0; i < 5; i++)
			close(fds[i]);
		if (mode == FAKE_DIE_IN_NEGOTIATION)
			_exit(0);
	}
}

int fake_server_start(enum fake_mode mode, pid_t *pid)
{
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	*pid = fork();
	if (*pid == 0) {
		close(pair[0]);
		serve(pair[1], mode);
		_exit(0);
	}
	close(pair[1]);
	return pair[0];
}
