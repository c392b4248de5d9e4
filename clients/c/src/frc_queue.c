/* SPDX-License-Identifier: MIT */
/*
 * frc_queue.c - one mapped faultring queue: descriptor checks, mapping,
 * negotiation, zero-copy reads, responses and the doorbell protocol.
 *
 * Who writes what (Docs/ABI.md section 3), and how this file touches it:
 *
 *   fault_prod        producer  load ACQUIRE before reading the slots it covers
 *   fault_cons        us        store RELEASE after our reads of those slots
 *   resp_prod         us        store RELEASE after the slots, then a SEQ_CST
 *                               fence before loading producer_sleeping
 *   resp_cons         producer  load ACQUIRE before overwriting a slot
 *   consumer_sleeping us        store SEQ_CST, then load fault_prod SEQ_CST
 *   producer_sleeping producer  load (after the fence) to decide to ring
 *   abi, state        producer  load ACQUIRE
 *
 * The producer region is mapped PROT_READ from a descriptor opened read-only
 * and sealed F_SEAL_FUTURE_WRITE, so nothing here can write it; but the
 * producer can, at any time. So the geometry (counts, ring offsets) is read
 * once, validated, and kept in struct frc_queue as counts and pointers:
 * nothing read from shared memory later can move a ring. Indices are
 * compared with unsigned wrap-around and used only as masked slot numbers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "faultring_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frc_internal.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

enum { PRODUCER_REGION, CONSUMER_REGION, CONSUMER_DOORBELL, PRODUCER_DOORBELL };

#define LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_SEQ_CST(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_SEQ_CST(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

static const struct faultring_producer_header *producer_header(const struct frc_queue *q)
{
	return (const struct faultring_producer_header *)(const void *)q->producer;
}

static struct faultring_consumer_header *consumer_header(const struct frc_queue *q)
{
	return (struct faultring_consumer_header *)(void *)q->consumer;
}

int frc_fail(char *error, int err, const char *format, ...)
{
	va_list args;
	va_start(args, format);
	vsnprintf(error, FRC_ERROR_MAX, format, args);
	va_end(args);
	return -err;
}

int64_t frc_now_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int frc_remaining_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - frc_now_ms();
	return left < 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

void frc_queue_init(struct frc_queue *q)
{
	memset(q, 0, sizeof *q);
	for (int i = 0; i < 4; i++)
		q->fds[i] = -1;
	q->control_fd = -1;
	q->spin = 2000;
}

void frc_queue_close(struct frc_queue *q)
{
	if (q->producer)
		munmap((void *)(uintptr_t)q->producer, q->producer_size);
	if (q->consumer)
		munmap(q->consumer, q->consumer_size);
	for (int i = 0; i < 4; i++)
		if (q->fds[i] >= 0)
			close(q->fds[i]);
	uint32_t spin = q->spin;
	frc_queue_init(q);
	q->spin = spin;
}

/* A region: a memfd (it has seals) carrying at least @seals, in @mode. */
static int check_region(struct frc_queue *q, int fd, const char *name, int seals, int mode, size_t *size)
{
	int got = fcntl(fd, F_GET_SEALS);
	if (got < 0)
		return frc_fail(q->error, EBADF, "%s region (fd %d): not a memfd (F_GET_SEALS: %s)", name, fd,
				strerror(errno));
	if ((got & seals) != seals)
		return frc_fail(q->error, EPERM, "%s region (fd %d): seals 0x%x, need 0x%x", name, fd, got, seals);
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || (flags & O_ACCMODE) != mode)
		return frc_fail(q->error, EPERM, "%s region (fd %d): opened %s, must be %s", name, fd,
				flags < 0 ? "?" : (flags & O_ACCMODE) == O_RDONLY ? "read-only" : "writable",
				mode == O_RDONLY ? "read-only" : "read-write");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return frc_fail(q->error, errno, "%s region (fd %d): fstat: %s", name, fd, strerror(errno));
	if (st.st_size < 4096 || (uint64_t)st.st_size > ((uint64_t)1 << 40))
		return frc_fail(q->error, EPROTO, "%s region (fd %d): size %lld out of range", name, fd,
				(long long)st.st_size);
	*size = (size_t)st.st_size;
	return 0;
}

/* A doorbell: an AF_UNIX SOCK_DGRAM socket; made non-blocking. */
static int check_doorbell(struct frc_queue *q, int fd, const char *name)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM)
		return frc_fail(q->error, EBADF, "%s doorbell (fd %d): not a SOCK_DGRAM socket", name, fd);
	len = sizeof domain;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
		return frc_fail(q->error, EBADF, "%s doorbell (fd %d): not an AF_UNIX socket", name, fd);
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
		return frc_fail(q->error, errno, "%s doorbell (fd %d): O_NONBLOCK: %s", name, fd, strerror(errno));
	return 0;
}

static int is_ring_size(uint32_t n)
{
	return n >= FAULTRING_MIN_ENTRIES && n <= FAULTRING_MAX_ENTRIES && (n & (n - 1)) == 0;
}

/*
 * Section 5, step 1: nothing in the header is trusted before this. It works
 * on a copy, so a producer that rewrites its header during the check (or
 * after it) cannot make a checked value differ from the one used.
 */
static int check_geometry(struct frc_queue *q)
{
	struct faultring_producer_header copy;
	memcpy(&copy, q->producer, sizeof copy);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	const struct faultring_producer_header *h = &copy;
	uint64_t n = h->entry_count, m = h->response_count;
	if (h->magic != FAULTRING_PRODUCER_MAGIC)
		return frc_fail(q->error, EPROTO, "producer header: magic 0x%016llx, expected 0x%016llx",
				(unsigned long long)h->magic, (unsigned long long)FAULTRING_PRODUCER_MAGIC);
	if (h->layout_version != FAULTRING_LAYOUT_VERSION || h->header_size != sizeof *h)
		return frc_fail(q->error, EPROTO, "producer header: layout %u size %u, expected %u and %zu",
				h->layout_version, h->header_size, FAULTRING_LAYOUT_VERSION, sizeof *h);
	if (h->entry_size != FAULTRING_ENTRY_SIZE || h->response_slot_size != FAULTRING_RESPONSE_SLOT_SIZE)
		return frc_fail(q->error, EPROTO, "producer header: entry_size %u response_slot_size %u, expected 64",
				h->entry_size, h->response_slot_size);
	if (!is_ring_size(h->entry_count) || !is_ring_size(h->response_count))
		return frc_fail(q->error, EPROTO, "producer header: entry_count %u response_count %u, not powers of two in 2..2^20",
				h->entry_count, h->response_count);
	if (h->ring_offset < sizeof *h || h->ring_offset % FAULTRING_REGION_ALIGN ||
	    h->ring_offset + n * FAULTRING_ENTRY_SIZE > q->producer_size)
		return frc_fail(q->error, EPROTO, "producer header: ring_offset %u + %llu entries exceeds the %zu-byte region",
				h->ring_offset, (unsigned long long)n, q->producer_size);
	if (h->response_ring_offset < sizeof(struct faultring_consumer_header) ||
	    h->response_ring_offset % FAULTRING_REGION_ALIGN ||
	    h->response_ring_offset + m * FAULTRING_RESPONSE_SLOT_SIZE > q->consumer_size)
		return frc_fail(q->error, EPROTO,
				"producer header: response_ring_offset %u + %llu slots exceeds the %zu-byte consumer region",
				h->response_ring_offset, (unsigned long long)m, q->consumer_size);
	if (h->max_abi < FAULTRING_ABI_V1)
		return frc_fail(q->error, EPROTO, "producer header: max_abi %u", h->max_abi);
	q->entry_count = h->entry_count;
	q->response_count = h->response_count;
	q->ring = q->producer + h->ring_offset;
	q->responses = q->consumer + h->response_ring_offset;
	return 0;
}

int frc_queue_map(struct frc_queue *q, const int fds[4])
{
	if (q->producer) {
		for (int i = 0; i < 4; i++)
			close(fds[i]);
		return frc_fail(q->error, EBUSY, "map: the queue is already mapped (frc_queue_close it first)");
	}
	uint32_t spin = q->spin ? q->spin : 2000;
	frc_queue_init(q);
	q->spin = spin;
	for (int i = 0; i < 4; i++)
		q->fds[i] = fds[i];
	int err;
	void *p, *c;
	if ((err = check_region(q, fds[PRODUCER_REGION], "producer",
				F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL | F_SEAL_FUTURE_WRITE, O_RDONLY,
				&q->producer_size)) ||
	    (err = check_region(q, fds[CONSUMER_REGION], "consumer", F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, O_RDWR,
				&q->consumer_size)) ||
	    (err = check_doorbell(q, fds[CONSUMER_DOORBELL], "consumer")) ||
	    (err = check_doorbell(q, fds[PRODUCER_DOORBELL], "producer")))
		goto fail;
	p = mmap(NULL, q->producer_size, PROT_READ, MAP_SHARED, fds[PRODUCER_REGION], 0);
	if (p == MAP_FAILED) {
		err = frc_fail(q->error, errno, "mmap producer region: %s", strerror(errno));
		goto fail;
	}
	q->producer = (const uint8_t *)p;
	c = mmap(NULL, q->consumer_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[CONSUMER_REGION], 0);
	if (c == MAP_FAILED) {
		err = frc_fail(q->error, errno, "mmap consumer region: %s", strerror(errno));
		goto fail;
	}
	q->consumer = (uint8_t *)c;
	if ((err = check_geometry(q)))
		goto fail;
	/* Our own indices: we are their only writer, so plain loads suffice. */
	q->cons = consumer_header(q)->fault_cons.value;
	q->resp_prod = q->resp_published = consumer_header(q)->resp_prod.value;
	/* A fresh queue's first sequence is 0; one taken over mid-stream learns it from its first record. */
	q->sequence_started = q->cons == 0;
	return 0;
fail: {
	char error[FRC_ERROR_MAX];
	memcpy(error, q->error, sizeof error);
	frc_queue_close(q);
	memcpy(q->error, error, sizeof error);
	return err;
}
}

/* Write one 8-byte ring on a doorbell; a full doorbell already holds a ring. */
static int ring(int fd)
{
	uint64_t one = 1;
	if (send(fd, &one, sizeof one, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 || errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	/* The other end is gone with the service's last descriptor: say so the one way. */
	return errno == ECONNREFUSED || errno == EPIPE || errno == ENOTCONN ? -ECONNRESET : -errno;
}

/* The waker's half of section 4, after our index store: fence, look, ring. */
static int wake_producer(struct frc_queue *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (LOAD_SEQ_CST(&producer_header(q)->producer_sleeping.value))
		return ring(q->fds[PRODUCER_DOORBELL]);
	return 0;
}

/* Drain every ring: each is one datagram; stop at EAGAIN. */
static void drain(int fd)
{
	uint64_t buf[8];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

/*
 * The sleeper's half of section 4: flag (seq_cst), re-check @word (seq_cst),
 * block, drain, unflag. Returns -ECONNRESET if the control socket hung up.
 */
static int sleep_while_equal(struct frc_queue *q, const uint32_t *word, uint32_t seen, int timeout_ms)
{
	const struct faultring_producer_header *h = producer_header(q);
	struct faultring_consumer_header *me = consumer_header(q);
	int result = 0;
	STORE_SEQ_CST(&me->consumer_sleeping.value, 1);
	if (LOAD_SEQ_CST(word) == seen && LOAD_ACQUIRE(&h->state) != FAULTRING_STATE_CLOSED) {
		/* events 0 on the control socket: only POLLHUP/POLLERR wake us. */
		struct pollfd pfd[2] = { { q->fds[CONSUMER_DOORBELL], POLLIN, 0 }, { q->control_fd, 0, 0 } };
		q->sleeps++;
		int n = poll(pfd, q->control_fd >= 0 ? 2 : 1, timeout_ms);
		if (n > 0 && (pfd[0].revents & POLLIN))
			drain(q->fds[CONSUMER_DOORBELL]);
		if (n > 0 && q->control_fd >= 0 && (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)))
			result = -ECONNRESET;
	}
	STORE_RELEASE(&me->consumer_sleeping.value, 0);
	return result;
}

int frc_queue_negotiate(struct frc_queue *q, uint32_t abi, int timeout_ms)
{
	if (!q->producer)
		return frc_fail(q->error, EBADF, "negotiate: the queue is not mapped");
	const struct faultring_producer_header *h = producer_header(q);
	struct faultring_consumer_header *me = consumer_header(q);
	uint32_t max_abi = h->max_abi;
	if (abi < FAULTRING_ABI_V1 || abi > FAULTRING_ABI_MAX || abi > max_abi)
		return frc_fail(q->error, ENOTSUP, "negotiate: ABI %u requested, the producer offers 1..%u, this library 1..%u",
				abi, max_abi, FAULTRING_ABI_MAX);
	uint32_t in_force = LOAD_ACQUIRE(&h->abi);
	if (in_force == 0) {
		me->requested_features = 0;
		/* seq_cst: requested_abi is an index the producer may be asleep on. */
		STORE_SEQ_CST(&me->requested_abi, abi);
		int err = wake_producer(q);
		if (err)
			return frc_fail(q->error, -err, "negotiate: ringing the producer: %s", strerror(-err));
		int64_t deadline = timeout_ms < 0 ? -1 : frc_now_ms() + timeout_ms;
		while ((in_force = LOAD_ACQUIRE(&h->abi)) == 0) {
			if (LOAD_ACQUIRE(&h->state) == FAULTRING_STATE_CLOSED)
				return frc_fail(q->error, ESHUTDOWN, "negotiate: the queue closed before an ABI was in force");
			int left = frc_remaining_ms(deadline);
			if (left == 0)
				return frc_fail(q->error, ETIMEDOUT, "negotiate: no ABI in force after %d ms", timeout_ms);
			/*
			 * Sleep on state, not abi: the producer stores abi (release), then
			 * state = RUNNING with seq_cst, then checks consumer_sleeping. Only
			 * the seq_cst store takes part in the no-lost-wake-up argument, so
			 * the re-check must load that word; seeing RUNNING (an acquire)
			 * makes abi visible too.
			 */
			if (sleep_while_equal(q, &h->state, FAULTRING_STATE_STARTING, left) == -ECONNRESET)
				return frc_fail(q->error, ECONNRESET, "negotiate: the service hung up");
		}
	}
	if (in_force != abi)
		return frc_fail(q->error, EPROTO, "negotiate: ABI %u in force, %u requested", in_force, abi);
	q->abi = abi;
	return 0;
}

/* ABI 2: every record's sequence is the previous + 1 (+ lost_records for LOST). */
static void account(struct frc_queue *q, const union frc_record *r)
{
	struct frc_loss *l = &q->loss;
	struct faultring_v2_lost lost;
	memcpy(&lost, r, sizeof lost); /* one copy: no union punning, and one read of shared memory */
	uint32_t expected = l->next_sequence;
	if (lost.type == FAULTRING_FAULT_LOST) {
		l->lost_markers++;
		l->lost_records += lost.lost_records;
		expected += (uint32_t)lost.lost_records;
	}
	if (!q->sequence_started)
		q->sequence_started = 1;
	else if (lost.sequence != expected)
		l->sequence_gaps++;
	l->next_sequence = lost.sequence + 1;
}

int frc_peek(struct frc_queue *q, const union frc_record **records, unsigned max)
{
	if (!q->abi)
		return frc_fail(q->error, EBADF, "peek: no ABI in force (map and negotiate first)");
	uint32_t prod = LOAD_ACQUIRE(&producer_header(q)->fault_prod.value);
	uint32_t ready = prod - q->cons; /* unsigned: wrap-around is not a special case */
	if (ready > q->entry_count)
		return frc_fail(q->error, EPROTO, "peek: fault_prod %u is %u records past fault_cons %u, ring holds %u",
				prod, ready, q->cons, q->entry_count);
	if (ready > max)
		ready = max;
	for (uint32_t i = 0; i < ready; i++) {
		const union frc_record *r =
			(const union frc_record *)(const void *)(q->ring + (size_t)((q->cons + i) & (q->entry_count - 1)) *
										    FAULTRING_ENTRY_SIZE);
		records[i] = r;
		if (i >= q->peeked && q->abi == FAULTRING_ABI_V2)
			account(q, r);
	}
	if (ready > q->peeked)
		q->peeked = ready;
	return (int)ready;
}

void frc_release(struct frc_queue *q, unsigned n)
{
	if (n > q->peeked)
		n = q->peeked; /* never past what was read: the producer would count a bad index */
	if (n == 0)
		return;
	q->cons += n;
	q->peeked -= n;
	/* release: our reads of those slots happen before the producer may reuse them. */
	STORE_RELEASE(&consumer_header(q)->fault_cons.value, q->cons);
}

int frc_wait(struct frc_queue *q, int timeout_ms)
{
	if (!q->abi)
		return frc_fail(q->error, EBADF, "wait: no ABI in force");
	const struct faultring_producer_header *h = producer_header(q);
	int64_t deadline = timeout_ms < 0 ? -1 : frc_now_ms() + timeout_ms;
	for (;;) {
		/*
		 * Plain loads, no pause: the spin is a count of loads (a few us at the
		 * default 2000), the same policy as the Swift consumer, so it costs
		 * about the same CPU on any x86 (pause takes 10 to 140 cycles).
		 */
		for (uint32_t i = 0; i < q->spin; i++) {
			uint32_t prod = LOAD_ACQUIRE(&h->fault_prod.value);
			if (prod != q->cons)
				return (int)(prod - q->cons > q->entry_count ? q->entry_count : prod - q->cons);
		}
		if (LOAD_ACQUIRE(&h->state) == FAULTRING_STATE_CLOSED && LOAD_ACQUIRE(&h->fault_prod.value) == q->cons)
			return frc_fail(q->error, ESHUTDOWN, "wait: the producer closed the queue and it is drained");
		int left = frc_remaining_ms(deadline);
		if (left == 0)
			return frc_fail(q->error, ETIMEDOUT, "wait: no record in %d ms", timeout_ms);
		if (sleep_while_equal(q, &h->fault_prod.value, q->cons, left) == -ECONNRESET &&
		    LOAD_ACQUIRE(&h->fault_prod.value) == q->cons && LOAD_ACQUIRE(&h->state) != FAULTRING_STATE_CLOSED)
			return frc_fail(q->error, ECONNRESET,
					"wait: the service hung up without closing the queue (it died)");
	}
}

/* Claims the next response slot, zeroed; NULL (and q->error) if the ring is full. */
static uint8_t *claim_slot(struct frc_queue *q, int *err)
{
	/* acquire: the producer has copied the slot out before we overwrite it. */
	uint32_t cons = LOAD_ACQUIRE(&producer_header(q)->resp_cons.value);
	uint32_t used = q->resp_prod - cons;
	if (used > q->response_count) {
		*err = frc_fail(q->error, EPROTO, "respond: resp_cons %u is not within a ring of resp_prod %u", cons,
				q->resp_prod);
		return NULL;
	}
	if (used == q->response_count) {
		*err = frc_fail(q->error, EAGAIN, "respond: the response ring is full (%u slots)", q->response_count);
		return NULL;
	}
	uint8_t *slot = q->responses + (size_t)(q->resp_prod & (q->response_count - 1)) * FAULTRING_RESPONSE_SLOT_SIZE;
	memset(slot, 0, FAULTRING_RESPONSE_SLOT_SIZE); /* bytes past argsz must be zero */
	return slot;
}

/* Writes the @len-byte response @r into the next slot (zeroed past it). */
static int put_response(struct frc_queue *q, const void *r, size_t len)
{
	int err;
	uint8_t *slot = claim_slot(q, &err);
	if (!slot)
		return err;
	memcpy(slot, r, len);
	q->resp_prod++;
	return 0;
}

static int check_code(struct frc_queue *q, uint32_t code)
{
	if (code > FAULTRING_RESP_FAILURE)
		return frc_fail(q->error, EINVAL, "respond: code %u is not SUCCESS, INVALID or FAILURE", code);
	return 0;
}

int frc_respond_cookie(struct frc_queue *q, uint64_t cookie, uint32_t code)
{
	int err;
	if (q->abi != FAULTRING_ABI_V2)
		return frc_fail(q->error, EINVAL, "respond: a cookie answers an ABI 2 queue; ABI %u is in force", q->abi);
	if ((err = check_code(q, code)))
		return err;
	struct faultring_v2_response r;
	memset(&r, 0, sizeof r);
	r.argsz = sizeof r;
	r.version = FAULTRING_RESP_VERSION_2;
	r.code = code;
	r.cookie = cookie;
	return put_response(q, &r, sizeof r);
}

int frc_respond_prgi(struct frc_queue *q, uint32_t prgi, int pasid_valid, uint32_t pasid, uint32_t code)
{
	int err;
	if (q->abi != FAULTRING_ABI_V1)
		return frc_fail(q->error, EINVAL, "respond: PASID and PRGI answer an ABI 1 queue; ABI %u is in force",
				q->abi);
	if ((err = check_code(q, code)))
		return err;
	if (prgi > FAULTRING_PRGI_MAX || (pasid_valid && pasid > FAULTRING_PASID_MAX))
		return frc_fail(q->error, EINVAL, "respond: PRGI %u (max %u) or PASID %u (max %u) out of range", prgi,
				FAULTRING_PRGI_MAX, pasid, FAULTRING_PASID_MAX);
	struct faultring_v1_response r;
	memset(&r, 0, sizeof r);
	r.argsz = sizeof r;
	r.version = FAULTRING_RESP_VERSION_1;
	r.flags = pasid_valid ? FAULTRING_RESP_PASID_VALID : 0;
	r.pasid = pasid_valid ? pasid : 0;
	r.grpid = prgi;
	r.code = code;
	return put_response(q, &r, sizeof r);
}

int frc_respond(struct frc_queue *q, const union frc_record *last, uint32_t code)
{
	if (q->abi == FAULTRING_ABI_V2) {
		if (last->v2.type != FAULTRING_FAULT_PAGE_REQ || !(last->v2.flags & FAULTRING_V2_LAST_PAGE))
			return frc_fail(q->error, EINVAL, "respond: record of type %u flags 0x%x is not a LAST_PAGE page request",
					last->v2.type, last->v2.flags);
		/* The cookie alone names the group, NEEDS_PASID or not (ABI.md section 8). */
		return frc_respond_cookie(q, last->v2.cookie, code);
	}
	if (q->abi == FAULTRING_ABI_V1) {
		const struct faultring_v1_page_request *p = &last->v1.prm;
		if (last->v1.type != FAULTRING_FAULT_PAGE_REQ || !(p->flags & FAULTRING_V1_PRQ_LAST_PAGE))
			return frc_fail(q->error, EINVAL, "respond: record of type %u flags 0x%x is not a LAST_PAGE page request",
					last->v1.type, p->flags);
		/* A NEEDS_PASID group must get its PASID back; for others it is ignored. */
		int needs = (p->flags & FAULTRING_V1_PRQ_NEEDS_PASID) && (p->flags & FAULTRING_V1_PRQ_PASID_VALID);
		return frc_respond_prgi(q, p->grpid, needs, p->pasid, code);
	}
	return frc_fail(q->error, EBADF, "respond: no ABI in force");
}

int frc_commit(struct frc_queue *q)
{
	if (!q->abi)
		return frc_fail(q->error, EBADF, "commit: no ABI in force");
	if (q->resp_prod == q->resp_published)
		return 0;
	/* release: the slots we wrote are visible before the index that covers them. */
	STORE_RELEASE(&consumer_header(q)->resp_prod.value, q->resp_prod);
	q->resp_published = q->resp_prod;
	int err = wake_producer(q);
	return err ? frc_fail(q->error, -err, "commit: ringing the producer: %s", strerror(-err)) : 0;
}

int frc_wait_response_space(struct frc_queue *q, int timeout_ms)
{
	int err = frc_commit(q);
	if (err)
		return err;
	const struct faultring_producer_header *h = producer_header(q);
	int64_t deadline = timeout_ms < 0 ? -1 : frc_now_ms() + timeout_ms;
	/* No doorbell announces freed slots (ABI.md section 8): poll with a bounded sleep. */
	uint32_t used;
	while ((used = q->resp_prod - LOAD_ACQUIRE(&h->resp_cons.value)) >= q->response_count) {
		if (used > q->response_count)
			return frc_fail(q->error, EPROTO, "wait for response space: resp_cons is not within a ring of resp_prod %u",
					q->resp_prod);
		if (LOAD_ACQUIRE(&h->state) == FAULTRING_STATE_CLOSED)
			return frc_fail(q->error, ESHUTDOWN, "wait for response space: the queue is closed");
		if (frc_remaining_ms(deadline) == 0)
			return frc_fail(q->error, ETIMEDOUT, "wait for response space: ring still full after %d ms",
					timeout_ms);
		/* A 50 us nap that also notices the service dying (events 0: hang-up only). */
		struct pollfd pfd = { q->control_fd, 0, 0 };
		struct timespec pause = { 0, 50000 };
		if (ppoll(&pfd, q->control_fd >= 0 ? 1 : 0, &pause, NULL) > 0 &&
		    (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) && LOAD_ACQUIRE(&h->state) != FAULTRING_STATE_CLOSED)
			return frc_fail(q->error, ECONNRESET, "wait for response space: the service hung up (it died)");
	}
	return 0;
}

const struct faultring_counters *frc_counters(const struct frc_queue *q)
{
	return q->producer ? &producer_header(q)->counters : NULL;
}

uint32_t frc_queue_state(const struct frc_queue *q)
{
	return q->producer ? LOAD_ACQUIRE(&producer_header(q)->state) : 0;
}
