/* SPDX-License-Identifier: MIT */
/*
 * faultring_client.h - libfaultring-client: what a VMM written in C (or C++)
 * links to consume a faultring queue.
 *
 * Two objects, both owned by the caller (no allocation on the data path):
 *
 *   struct frc_client  the control connection (AF_UNIX SOCK_SEQPACKET):
 *                      HELLO, ATTACH, DETACH, STATS, BYE (Docs/PROTOCOL.md)
 *   struct frc_queue   one mapped queue pair: read fault records without
 *                      copying, release them, write page responses, sleep
 *                      on the doorbell (Docs/ABI.md)
 *
 * Conventions, as in liburing: every call that can fail returns 0 or a count
 * on success and a negative errno on failure; nothing sets errno for you.
 * When a call fails, frc_client.error / frc_queue.error hold a sentence that
 * names what was wrong and where. No call starts a thread or installs a
 * signal handler; sockets are sent to with MSG_NOSIGNAL.
 *
 * One page per call in clients/c/doc/. Memory ordering of every shared index
 * is the contract's (Docs/ABI.md sections 3 and 4); the comments in
 * frc_queue.c say which load or store keeps which rule.
 */
#ifndef FAULTRING_CLIENT_H
#define FAULTRING_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "faultring_abi.h"
#include "faultring_protocol.h" /* FAULTRING_BIND_*, FAULTRING_INV_*: the nested IOMMU calls take them */

#ifdef __cplusplus
extern "C" {
#endif

#define FRC_VERSION_MAJOR 1
#define FRC_VERSION_MINOR 0

/** Devices one ATTACH or DETACH may name (the service's limit). */
#define FRC_MAX_DEVICES 64u
/** Bytes kept of the service's HELLO reply (its capabilities, JSON). */
#define FRC_CAPS_MAX 2048u
/** Bytes kept of an error sentence. */
#define FRC_ERROR_MAX 256u
/** Default control-reply timeout, in milliseconds. */
#define FRC_DEFAULT_TIMEOUT_MS 5000

/**
 * union frc_record - one 64-byte fault record, read in place in the ring.
 * @v1:    ABI 1 (the kernel's struct iommu_fault)
 * @v2:    ABI 2 (DMA_UNRECOV or PAGE_REQ: type 1 or 2)
 * @lost:  ABI 2 LOST record (type FAULTRING_FAULT_LOST)
 * @bytes: the raw slot
 *
 * A pointer to one is valid until the frc_release() that passes it. Copy the
 * record if you keep it longer.
 */
union frc_record {
	struct faultring_v1_fault v1;
	struct faultring_v2_fault v2;
	struct faultring_v2_lost lost;
	uint8_t bytes[FAULTRING_ENTRY_SIZE];
};

/**
 * struct frc_loss - what the ABI 2 sequence numbers said about loss.
 * @lost_records:  records the producer dropped, as its LOST records report
 * @lost_markers:  LOST records received
 * @sequence_gaps: records whose sequence was not the previous one + 1 (for a
 *                 LOST record: + 1 + lost_records); 0 on a correct producer
 * @next_sequence: the sequence number the next record must carry
 *
 * Counted by frc_peek() once per record. ABI 1 has no sequence numbers:
 * read the producer's records_lost counter (frc_counters()).
 */
struct frc_loss {
	uint64_t lost_records;
	uint64_t lost_markers;
	uint64_t sequence_gaps;
	uint32_t next_sequence;
};

/**
 * struct frc_queue - one mapped queue. frc_queue_init() it before first use
 * (a zeroed struct would name fd 0 as its own). Fields are readable; change
 * none but @spin and @control_fd. One thread at a time.
 * @producer/@producer_size: the producer region, mapped PROT_READ
 * @consumer/@consumer_size: the consumer region, mapped read-write
 * @ring/@responses: the fault ring and the response ring, located once
 *                 from the validated header (a producer that rewrites its
 *                 header later cannot move them)
 * @fds:           producer region, consumer region, consumer doorbell,
 *                 producer doorbell (owned; -1 when closed)
 * @control_fd:    the control socket frc_wait() and the other waits watch
 *                 for the service going away (not owned; -1: none). Set by
 *                 frc_attach(); set it yourself after frc_queue_map().
 * @abi:           ABI in force (0 before negotiation)
 * @entry_count/@response_count: ring sizes, powers of two
 * @cons:          next record to read; stored to fault_cons by frc_release()
 * @peeked:        records checked by frc_peek() past @cons
 * @resp_prod:     next response slot; stored to resp_prod by frc_commit()
 * @resp_published: the resp_prod value last stored
 * @spin:          fault_prod loads frc_wait() makes before it sleeps
 *                 (frc_queue_init: 2000)
 * @loss:          ABI 2 loss accounting
 * @sequence_started: 1 once @loss.next_sequence is known (a queue taken
 *                 over mid-stream learns it from its first record)
 * @sleeps:        times frc_wait() blocked on the doorbell
 * @error:         what the last failing call found
 */
struct frc_queue {
	const uint8_t *producer;
	size_t producer_size;
	uint8_t *consumer;
	size_t consumer_size;
	const uint8_t *ring;
	uint8_t *responses;
	int fds[4];
	int control_fd;
	uint32_t abi;
	uint32_t entry_count;
	uint32_t response_count;
	uint32_t cons;
	uint32_t peeked;
	uint32_t resp_prod;
	uint32_t resp_published;
	uint32_t spin;
	struct frc_loss loss;
	int sequence_started;
	uint64_t sleeps;
	char error[FRC_ERROR_MAX];
};

/**
 * struct frc_client - one control connection. frc_client_init() it before
 * first use; change only @timeout_ms. One thread at a time.
 * @fd:           the SOCK_SEQPACKET socket (owned; -1 when closed)
 * @next_id:      id of the next request
 * @timeout_ms:   how long a request waits for its reply, in ms (0: the
 *                default, FRC_DEFAULT_TIMEOUT_MS; < 0: forever)
 * @protocol_version/@entry_count/@response_count/@max_devices_per_attach:
 *                parsed from the HELLO reply
 * @caps:         the HELLO reply, NUL-terminated JSON
 * @buffer:       one message (FAULTRING_MSG_MAX bytes), allocated by connect
 * @error:        what the last failing call found, or the service's reason
 */
struct frc_client {
	int fd;
	uint16_t next_id;
	int timeout_ms;
	uint32_t protocol_version;
	uint32_t entry_count;
	uint32_t response_count;
	uint32_t max_devices_per_attach;
	char caps[FRC_CAPS_MAX];
	uint8_t *buffer;
	char error[FRC_ERROR_MAX];
};

/* ---- the control connection (frc_control.c) ---------------------------- */

/** frc_client_init - a closed client with default settings. */
void frc_client_init(struct frc_client *c);
/** frc_connect - connect to @path and say HELLO as @name. */
int frc_connect(struct frc_client *c, const char *path, const char *name);
/** frc_connect_fd - say HELLO on an inherited, connected socket (owned from now on). */
int frc_connect_fd(struct frc_client *c, int fd, const char *name);
/** frc_attach - attach devices; the first success maps and negotiates @q. */
int frc_attach(struct frc_client *c, struct frc_queue *q, uint32_t abi, const uint32_t *ids, unsigned count,
	       int negotiate_timeout_ms);
/** frc_detach - detach devices (count 0: all); cannot fail on a live connection. */
int frc_detach(struct frc_client *c, const uint32_t *ids, unsigned count);
/** frc_stats - the service's STATS, JSON or Prometheus text, into @buf. */
int frc_stats(struct frc_client *c, int prometheus, char *buf, size_t len);
/** frc_bye - say BYE; the service then closes the connection and the queue. */
int frc_bye(struct frc_client *c);
/** frc_close - close the connection (the service answers what is left INVALID). */
void frc_close(struct frc_client *c);
/** frc_reconnect - close @c and @q, then connect, HELLO and ATTACH again until @timeout_ms. */
int frc_reconnect(struct frc_client *c, struct frc_queue *q, const char *path, const char *name, uint32_t abi,
		  const uint32_t *ids, unsigned count, int timeout_ms);

/* ---- the nested IOMMU: a guest that owns stage 1 (frc_control.c) ------ */

/** frc_add_guest_memory - share guest RAM: GPA @gpa..+@size is @fd (a memfd sealed F_SEAL_SHRINK) at @offset. */
int frc_add_guest_memory(struct frc_client *c, int fd, uint64_t gpa, uint64_t size, uint64_t offset);
/** frc_bind_vtd_pasid - bind @pasid's first stage (the guest's PASID-table entry) on every device of @ids, or none. */
int frc_bind_vtd_pasid(struct frc_client *c, uint32_t pasid, const uint64_t entry[8], const uint32_t *ids,
		       unsigned count);
/** frc_bind_smmuv3_ste - bind the guest's CD table (STE words 0 and 1) on every device of @ids, or none. */
int frc_bind_smmuv3_ste(struct frc_client *c, const uint64_t ste[2], const uint32_t *ids, unsigned count);
/** frc_unbind - undo a bind (@format FAULTRING_BIND_*; @pasid for VT-d, else 0); cannot fail once well formed. */
int frc_unbind(struct frc_client *c, uint32_t format, uint32_t pasid, const uint32_t *ids, unsigned count);
/** frc_invalidate - forward one guest invalidation (FAULTRING_INV_* with FAULTRING_INV_FLAG_*). */
int frc_invalidate(struct frc_client *c, uint32_t granularity, uint32_t flags, uint32_t device, uint32_t pasid,
		   uint64_t address, uint64_t size);
/** frc_bind_msi - the guest's MSI doorbell at @iova is the page at @gpa (@size: a power of two, 4 KiB .. 1 MiB). */
int frc_bind_msi(struct frc_client *c, uint64_t iova, uint64_t gpa, uint64_t size);
/** frc_unbind_msi - remove the doorbell binding at @iova; cannot fail once well formed. */
int frc_unbind_msi(struct frc_client *c, uint64_t iova);

/* ---- the queue (frc_queue.c) ------------------------------------------ */

/** frc_queue_init - a closed queue with default settings. */
void frc_queue_init(struct frc_queue *q);
/** frc_queue_map - validate the four descriptors (owned from now on) and map them. */
int frc_queue_map(struct frc_queue *q, const int fds[4]);
/** frc_queue_negotiate - request @abi and wait up to @timeout_ms for it to be in force. */
int frc_queue_negotiate(struct frc_queue *q, uint32_t abi, int timeout_ms);
/** frc_queue_close - unmap and close everything the queue owns. */
void frc_queue_close(struct frc_queue *q);
/** frc_peek - pointers to up to @max ready records, in place; no copy. */
int frc_peek(struct frc_queue *q, const union frc_record **records, unsigned max);
/** frc_release - give the first @n peeked records back to the producer. */
void frc_release(struct frc_queue *q, unsigned n);
/** frc_wait - spin, then sleep on the doorbell, until records are ready. */
int frc_wait(struct frc_queue *q, int timeout_ms);
/** frc_respond - answer the group that @last (its LAST_PAGE record) closes. */
int frc_respond(struct frc_queue *q, const union frc_record *last, uint32_t code);
/** frc_respond_cookie - ABI 2: answer the group named by @cookie. */
int frc_respond_cookie(struct frc_queue *q, uint64_t cookie, uint32_t code);
/** frc_respond_prgi - ABI 1: answer by PRGI, with the PASID if @pasid_valid. */
int frc_respond_prgi(struct frc_queue *q, uint32_t prgi, int pasid_valid, uint32_t pasid, uint32_t code);
/** frc_commit - publish the written responses and wake the producer if it sleeps. */
int frc_commit(struct frc_queue *q);
/** frc_wait_response_space - commit, then wait until a response slot is free. */
int frc_wait_response_space(struct frc_queue *q, int timeout_ms);
/** frc_counters - the producer's counters (statistics; plain loads). */
const struct faultring_counters *frc_counters(const struct frc_queue *q);
/** frc_queue_state - the producer's state: FAULTRING_STATE_*. */
uint32_t frc_queue_state(const struct frc_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* FAULTRING_CLIENT_H */
