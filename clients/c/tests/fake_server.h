/* SPDX-License-Identifier: MIT */
/*
 * fake_server.h - a hostile control peer for the tests: it answers HELLO as
 * the service does, then answers ATTACH wrongly in one chosen way.
 */
#ifndef FAKE_SERVER_H
#define FAKE_SERVER_H

#include <sys/types.h>

enum fake_mode {
	FAKE_VALID_QUEUE,     /* a well-formed queue that never negotiates */
	FAKE_THREE_FDS,       /* the ATTACH reply carries 3 descriptors */
	FAKE_FIVE_FDS,        /* ... or 5 */
	FAKE_UNSEALED,        /* the producer region has no seals */
	FAKE_WRITABLE,        /* the producer region is opened O_RDWR */
	FAKE_NOT_MEMFD,       /* the consumer region is a pipe */
	FAKE_STREAM_DOORBELL, /* a doorbell is a SOCK_STREAM socket */
	FAKE_TRUNCATED,       /* the ATTACH reply payload is 8 bytes, not 16 */
	FAKE_SIZE_MISMATCH,   /* the header's size disagrees with the packet */
	FAKE_BAD_MAGIC,       /* the producer header's magic is wrong */
	FAKE_RING_TOO_BIG,    /* entry_count says more slots than the region holds */
	FAKE_WRONG_ID,        /* the reply's id is not the request's */
	FAKE_NO_REPLY,        /* ATTACH is never answered */
	FAKE_HELLO_SHORT,     /* the HELLO reply is 5 bytes */
	FAKE_ZERO_LENGTH,     /* a 0-byte packet on a live connection, then nothing */
	FAKE_STALE_REPLY,     /* a late reply (older id, 4 descriptors) before the real one */
	FAKE_DIE_IN_NEGOTIATION, /* a valid queue, then the server exits */
	FAKE_RUNNING,         /* an ABI 2 queue already running, one record in it;
				 on STATS it rewrites its header to point outside the
				 regions, then answers; on BYE it exits */
	FAKE_MODES
};

/* Name of a mode, for test output. */
const char *fake_mode_name(enum fake_mode mode);

/*
 * Forks a fake server speaking @mode on one end of a SOCK_SEQPACKET pair and
 * returns the other end (the caller's to close); *pid is the child.
 */
int fake_server_start(enum fake_mode mode, pid_t *pid);

#endif /* FAKE_SERVER_H */
