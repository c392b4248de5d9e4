/* SPDX-License-Identifier: MIT */
/*
 * A faultring consumer in plain C, written from faultring_abi.h and
 * Docs/ABI.md only. It inherits a queue at fds 3..6 (producer region,
 * consumer region, consumer doorbell, producer doorbell), negotiates ABI 2,
 * reads RECORDS records (LOST records count for the records they report),
 * checks sequence numbers, answers every page request SUCCESS by cookie,
 * sleeps on its doorbell when the ring is empty, and prints one JSON line.
 *
 *   cc -O2 -I Sources/CFaultRingABI/include consumer.c -o consumer
 *   consumer RECORDS
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faultring_abi.h"

enum { PRODUCER_FD = 3, CONSUMER_FD = 4, MY_DOORBELL = 5, PRODUCER_DOORBELL = 6 };

#define LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_SEQ_CST(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_SEQ_CST(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

static const struct faultring_producer_header *hdr;
static struct faultring_consumer_header *me;

static void die(const char *what)
{
	fprintf(stderr, "c-consumer: %s (%s)\n", what, strerror(errno));
	exit(1);
}

static void ring_producer(void)
{
	/* After our seq_cst store: wake the producer only if it said it sleeps. */
	if (LOAD_SEQ_CST(&hdr->producer_sleeping.value)) {
		uint64_t one = 1;
		if (write(PRODUCER_DOORBELL, &one, sizeof one) < 0 && errno != EAGAIN)
			die("write producer doorbell");
	}
}

/* Sleep until *word != seen (or timeout): flag, re-check, block, drain. */
static void sleep_while_equal(const uint32_t *word, uint32_t seen)
{
	STORE_SEQ_CST(&me->consumer_sleeping.value, 1);
	if (LOAD_SEQ_CST(word) == seen && LOAD_ACQUIRE(&hdr->state) != FAULTRING_STATE_CLOSED) {
		struct pollfd pfd = { .fd = MY_DOORBELL, .events = POLLIN };
		poll(&pfd, 1, 1000);
		uint64_t drained;
		while (read(MY_DOORBELL, &drained, sizeof drained) > 0)
			;
	}
	STORE_RELEASE(&me->consumer_sleeping.value, 0);
}

int main(int argc, char **argv)
{
	uint64_t want = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000;
	struct stat ps, cs;
	if (fstat(PRODUCER_FD, &ps) || fstat(CONSUMER_FD, &cs))
		die("fstat");
	if ((size_t)ps.st_size < sizeof *hdr || (size_t)cs.st_size < sizeof *me)
		die("regions smaller than their headers");
	const uint8_t *p = mmap(NULL, ps.st_size, PROT_READ, MAP_SHARED, PRODUCER_FD, 0);
	uint8_t *c = mmap(NULL, cs.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, CONSUMER_FD, 0);
	if (p == MAP_FAILED || c == MAP_FAILED)
		die("mmap");
	hdr = (const void *)p;
	me = (void *)c;

	/* 1. Validate the geometry before trusting any offset. */
	uint32_t n = hdr->entry_count, m = hdr->response_count;
	if (hdr->magic != FAULTRING_PRODUCER_MAGIC || hdr->layout_version != FAULTRING_LAYOUT_VERSION ||
	    hdr->entry_size != FAULTRING_ENTRY_SIZE || hdr->response_slot_size != FAULTRING_RESPONSE_SLOT_SIZE ||
	    n == 0 || (n & (n - 1)) || m == 0 || (m & (m - 1)) ||
	    (uint64_t)hdr->ring_offset + (uint64_t)n * 64 > (uint64_t)ps.st_size ||
	    (uint64_t)hdr->response_ring_offset + (uint64_t)m * 64 > (uint64_t)cs.st_size) {
		errno = EINVAL;
		die("not a faultring queue of this layout");
	}
	if (hdr->max_abi < FAULTRING_ABI_V2) {
		errno = ENOTSUP;
		die("producer does not offer ABI 2");
	}
	const uint8_t *ring = p + hdr->ring_offset;
	uint8_t *responses = c + hdr->response_ring_offset;

	/* 2. Negotiate: features first, then the ABI (seq_cst), then the doorbell check. */
	me->requested_features = 0;
	STORE_SEQ_CST(&me->requested_abi, FAULTRING_ABI_V2);
	ring_producer();
	while (LOAD_ACQUIRE(&hdr->abi) == 0)
		sleep_while_equal(&hdr->abi, 0);
	if (LOAD_ACQUIRE(&hdr->abi) != FAULTRING_ABI_V2) {
		errno = EPROTO;
		die("producer put another ABI in force");
	}

	/* 3. Consume. */
	uint32_t cons = me->fault_cons.value, resp_prod = me->resp_prod.value;
	uint64_t records = 0, lost = 0, responses_sent = 0, errors = 0, sleeps = 0;
	uint32_t next_seq = 0;
	while (records + lost < want) {
		uint32_t prod = LOAD_ACQUIRE(&hdr->fault_prod.value);
		if (prod == cons) {
			if (LOAD_ACQUIRE(&hdr->state) == FAULTRING_STATE_CLOSED)
				break;
			sleeps++;
			sleep_while_equal(&hdr->fault_prod.value, cons);
			continue;
		}
		if (prod - cons > n) {
			errno = EPROTO;
			die("producer index more than a ring ahead");
		}
		for (; cons != prod; cons++) {
			const void *slot = ring + (size_t)(cons & (n - 1)) * 64;
			struct faultring_v2_fault rec;
			memcpy(&rec, slot, sizeof rec);
			if (rec.type == FAULTRING_FAULT_LOST) {
				struct faultring_v2_lost l;
				memcpy(&l, slot, sizeof l);
				if (l.first_lost_sequence != next_seq)
					errors++;
				lost += l.lost_records;
				next_seq = l.sequence + 1;
				continue;
			}
			if (rec.sequence != next_seq)
				errors++;
			next_seq = rec.sequence + 1;
			records++;
			if (rec.type != FAULTRING_FAULT_PAGE_REQ || !(rec.flags & FAULTRING_V2_LAST_PAGE))
				continue;
			/* Answer the group: wait for a free response slot, never overwrite. */
			while (resp_prod - LOAD_ACQUIRE(&hdr->resp_cons.value) >= m)
				;
			struct faultring_v2_response r = {
				.argsz = sizeof r, .version = FAULTRING_RESP_VERSION_2, .code = FAULTRING_RESP_SUCCESS,
				.cookie = rec.cookie, /* ABI 2: the cookie alone names the group, NEEDS_PASID or not */
			};
			uint8_t *out = responses + (size_t)(resp_prod & (m - 1)) * 64;
			memset(out, 0, 64);
			memcpy(out, &r, sizeof r);
			resp_prod++;
			STORE_SEQ_CST(&me->resp_prod.value, resp_prod);
			ring_producer();
			responses_sent++;
		}
		STORE_RELEASE(&me->fault_cons.value, cons);
	}
	printf("{\"records\":%llu,\"lost\":%llu,\"responses\":%llu,\"errors\":%llu,\"sleeps\":%llu}\n",
	       (unsigned long long)records, (unsigned long long)lost, (unsigned long long)responses_sent,
	       (unsigned long long)errors, (unsigned long long)sleeps);
	return errors ? 2 : 0;
}
