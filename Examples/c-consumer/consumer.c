/* SPDX-License-Identifier: MIT */
/*
 * A faultring consumer in plain C on libfaultring-client (clients/c). It
 * inherits a queue at fds 3..6 (producer region, consumer region, consumer
 * doorbell, producer doorbell), negotiates ABI 2, reads RECORDS records (LOST
 * records count for the records they report), checks sequence numbers,
 * answers every page request SUCCESS by cookie, sleeps on its doorbell when
 * the ring is empty, and prints one JSON line.
 *
 *   cc -std=c11 -O2 -I clients/c/include -I Sources/CFaultRingABI/include \
 *      consumer.c clients/c/src/frc_*.c -o consumer
 *   consumer RECORDS
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultring_client.h"

static void die(const struct frc_queue *q, const char *what, int err)
{
	fprintf(stderr, "c-consumer: %s: %s (%s)\n", what, q->error, strerror(-err));
	exit(1);
}

int main(int argc, char **argv)
{
	uint64_t want = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000;
	const int fds[4] = { 3, 4, 5, 6 };
	struct frc_queue q;
	frc_queue_init(&q);
	int err;
	if ((err = frc_queue_map(&q, fds)) < 0)
		die(&q, "map", err);
	if ((err = frc_queue_negotiate(&q, FAULTRING_ABI_V2, 10000)) < 0)
		die(&q, "negotiate", err);

	uint64_t records = 0, responses = 0;
	const union frc_record *batch[64];
	while (records + q.loss.lost_records < want) {
		if ((err = frc_wait(&q, 1000)) == -ETIMEDOUT)
			continue;
		if (err == -ESHUTDOWN)
			break;
		if (err < 0 || (err = frc_peek(&q, batch, 64)) < 0)
			die(&q, "read", err);
		int n = err;
		for (int i = 0; i < n; i++) {
			const struct faultring_v2_fault *f = &batch[i]->v2;
			if (f->type == FAULTRING_FAULT_LOST)
				continue; /* counted in q.loss by frc_peek */
			records++;
			if (f->type != FAULTRING_FAULT_PAGE_REQ || !(f->flags & FAULTRING_V2_LAST_PAGE))
				continue;
			/* Never overwrite a response the producer has not read. */
			while ((err = frc_respond(&q, batch[i], FAULTRING_RESP_SUCCESS)) == -EAGAIN)
				if ((err = frc_wait_response_space(&q, 1000)) < 0 && err != -ETIMEDOUT)
					die(&q, "respond", err);
			if (err < 0)
				die(&q, "respond", err);
			/* One commit per response, as before: the producer sees each answer at once. */
			if ((err = frc_commit(&q)) < 0)
				die(&q, "commit", err);
			responses++;
		}
		frc_release(&q, (unsigned)n);
	}
	printf("{\"records\":%llu,\"lost\":%llu,\"responses\":%llu,\"errors\":%llu,\"sleeps\":%llu}\n",
	       (unsigned long long)records, (unsigned long long)q.loss.lost_records, (unsigned long long)responses,
	       (unsigned long long)q.loss.sequence_gaps, (unsigned long long)q.sleeps);
	int status = q.loss.sequence_gaps ? 2 : 0;
	frc_queue_close(&q);
	return status;
}
