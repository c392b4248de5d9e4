/* SPDX-License-Identifier: MIT */
/*
 * bench - consume and answer everything for SECONDS, then print one JSON
 * line {"records","groups","seconds"}: the library's throughput against a
 * given service load (Benchmarks/client-bench.sh runs it next to the others).
 *
 *   bench SOCKET SECONDS ABI DEVICE...
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faultring_client.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s SOCKET SECONDS ABI DEVICE...\n", argv[0]);
		return 2;
	}
	double seconds = atof(argv[2]);
	uint32_t abi = (uint32_t)atoi(argv[3]), ids[FRC_MAX_DEVICES];
	unsigned count = 0;
	for (int i = 4; i < argc && count < FRC_MAX_DEVICES; i++)
		ids[count++] = (uint32_t)strtoul(argv[i], NULL, 0);
	struct frc_client c;
	struct frc_queue q;
	frc_client_init(&c);
	frc_queue_init(&q);
	int err = frc_connect(&c, argv[1], "c-bench");
	if (err < 0 || (err = frc_attach(&c, &q, abi, ids, count, 5000)) < 0) {
		fprintf(stderr, "bench: %s (%s)\n", c.error, strerror(-err));
		return 1;
	}
	unsigned long long records = 0, groups = 0;
	const union frc_record *batch[256];
	double start = now(), end = start + seconds;
	while (now() < end) {
		if ((err = frc_wait(&q, 100)) == -ETIMEDOUT)
			continue;
		if (err < 0 || (err = frc_peek(&q, batch, 256)) < 0)
			break;
		int n = err;
		for (int i = 0; i < n; i++) {
			const union frc_record *r = batch[i];
			records++;
			int last = abi == 2 ? r->v2.type == FAULTRING_FAULT_PAGE_REQ && (r->v2.flags & FAULTRING_V2_LAST_PAGE)
					    : r->v1.type == FAULTRING_FAULT_PAGE_REQ &&
						      (r->v1.prm.flags & FAULTRING_V1_PRQ_LAST_PAGE);
			if (!last)
				continue;
			while ((err = frc_respond(&q, r, FAULTRING_RESP_SUCCESS)) == -EAGAIN)
				if ((err = frc_wait_response_space(&q, 1000)) < 0)
					break;
			groups += err == 0;
		}
		frc_release(&q, (unsigned)n);
		if ((err = frc_commit(&q)) < 0)
			break;
	}
	double elapsed = now() - start;
	if (err < 0 && err != -ETIMEDOUT)
		fprintf(stderr, "bench: %s (%s)\n", q.error, strerror(-err));
	printf("{\"records\":%llu,\"groups\":%llu,\"seconds\":%.3f}\n", records, groups, elapsed);
	frc_bye(&c);
	frc_queue_close(&q);
	frc_close(&c);
	return 0;
}
