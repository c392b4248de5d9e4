/* SPDX-License-Identifier: MIT */
/*
 * consume - the whole client in one page: connect to `faultring serve`,
 * attach devices for ABI 2, read records in place, answer every page-request
 * group SUCCESS, and stop after GROUPS groups or when the queue closes.
 *
 *   consume SOCKET GROUPS DEVICE...     e.g. consume /tmp/fr.sock 1000 1 2 3 4
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultring_client.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s SOCKET GROUPS DEVICE...\n", argv[0]);
		return 2;
	}
	unsigned long long want = strtoull(argv[2], NULL, 0), groups = 0, records = 0;
	uint32_t ids[FRC_MAX_DEVICES];
	unsigned count = 0;
	for (int i = 3; i < argc && count < FRC_MAX_DEVICES; i++)
		ids[count++] = (uint32_t)strtoul(argv[i], NULL, 0);

	struct frc_client client;
	struct frc_queue queue;
	frc_client_init(&client);
	frc_queue_init(&queue);
	int err = frc_connect(&client, argv[1], "example-consume");
	if (err < 0) {
		fprintf(stderr, "connect: %s (%s)\n", client.error, strerror(-err));
		return 1;
	}
	err = frc_attach(&client, &queue, FAULTRING_ABI_V2, ids, count, 5000);
	if (err < 0) {
		fprintf(stderr, "attach: %s (%s)\n", client.error, strerror(-err));
		return 1;
	}

	const union frc_record *batch[64];
	while (groups < want) {
		err = frc_wait(&queue, 1000);
		if (err == -ETIMEDOUT)
			continue;
		if (err < 0)
			break; /* -ESHUTDOWN: queue closed; -ECONNRESET: service gone */
		int n = frc_peek(&queue, batch, 64);
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			const struct faultring_v2_fault *f = &batch[i]->v2;
			records++;
			/* A VMM reinjects f into its vIOMMU here; we answer at once. */
			if (f->type != FAULTRING_FAULT_PAGE_REQ || !(f->flags & FAULTRING_V2_LAST_PAGE))
				continue;
			while ((err = frc_respond(&queue, batch[i], FAULTRING_RESP_SUCCESS)) == -EAGAIN)
				if ((err = frc_wait_response_space(&queue, 1000)) < 0 && err != -ETIMEDOUT)
					break;
			if (err < 0)
				break;
			groups++;
		}
		frc_release(&queue, (unsigned)n);
		if (err < 0 || (err = frc_commit(&queue)) < 0)
			break;
	}
	if (err < 0 && err != -ESHUTDOWN)
		fprintf(stderr, "stopped: %s (%s)\n", queue.error, strerror(-err));
	printf("{\"records\":%llu,\"groups\":%llu,\"lost\":%llu,\"gaps\":%llu,\"closed\":%s}\n", records, groups,
	       (unsigned long long)queue.loss.lost_records, (unsigned long long)queue.loss.sequence_gaps,
	       err == -ESHUTDOWN ? "true" : "false");
	frc_bye(&client);
	frc_queue_close(&queue);
	frc_close(&client);
	return err < 0 && err != -ESHUTDOWN ? 1 : 0;
}
