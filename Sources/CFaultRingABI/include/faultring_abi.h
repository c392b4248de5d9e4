/* SPDX-License-Identifier: MIT */
/*
 * faultring_abi.h - wire layouts of the faultring shared-memory fault queue.
 *
 * This header is THE contract between the faultring service (the producer of
 * fault records) and a consumer (a VMM) in another process, in any language.
 * It is plain C11 with no dependency but <stdint.h> and <stddef.h>; a C or
 * Rust VMM includes (or bindgens) it as-is. The Swift code imports these very
 * structs, so code and contract cannot drift. Docs/ABI.md is the prose.
 *
 * Two regions, each written by exactly one side:
 *
 *   producer region (memfd, written by the service, mapped PROT_READ by the
 *   consumer from a read-only fd):
 *       [0, header_size)          struct faultring_producer_header
 *       [ring_offset, +N*64)      fault ring: N records of entry_size bytes
 *
 *   consumer region (memfd, written by the consumer, read by the service,
 *   which treats every byte as hostile):
 *       [0, 256)                  struct faultring_consumer_header
 *       [response_ring_offset,..) response ring: M slots of response_slot_size
 *
 * Indices are free-running uint32_t counters: slot = index & (count - 1),
 * empty when prod == cons, full when prod - cons == count (all slots used).
 * Whoever owns an index stores it with (at least) release ordering after
 * writing the slots it covers; the other side loads it with acquire
 * ordering before reading those slots. An index that is followed by a
 * doorbell check (fault_prod, resp_prod, requested_abi) is stored with
 * release ordering, then a seq_cst fence is issued, then the other side's
 * sleeping flag is loaded (a seq_cst store of the index in place of the
 * fence is equally correct); the sleeper stores its flag seq_cst and
 * re-loads the index seq_cst. The no-lost-wake-up argument (Docs/ABI.md
 * section 4) is made for the fence (or store), the flag store and the
 * re-load, which all belong to the one total order of seq_cst operations.
 *
 * All multi-byte fields are little-endian host order (x86-64, arm64).
 */
#ifndef FAULTRING_ABI_H
#define FAULTRING_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "faultring_pin.h"

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */
/* ------------------------------------------------------------------------ */

/** FAULTRING_PRODUCER_MAGIC - first 8 bytes of a producer region, "FLTRING1". */
#define FAULTRING_PRODUCER_MAGIC 0x31474E4952544C46ULL
/** FAULTRING_LAYOUT_VERSION - version of the region layout in this header. */
#define FAULTRING_LAYOUT_VERSION 1u

/** Record ABI versions. 1: struct iommu_fault clone. 2: extended record. */
#define FAULTRING_ABI_NONE 0u
#define FAULTRING_ABI_V1 1u
#define FAULTRING_ABI_V2 2u
#define FAULTRING_ABI_MAX FAULTRING_ABI_V2

/** Sizes that are fixed by this layout version. */
#define FAULTRING_CACHELINE 64u
#define FAULTRING_ENTRY_SIZE 64u          /* every fault record, v1 and v2 */
#define FAULTRING_RESPONSE_SLOT_SIZE 64u  /* every response slot, v1 and v2 */
#define FAULTRING_REGION_ALIGN 4096u      /* ring offsets are multiples of this */
#define FAULTRING_MIN_ENTRIES 2u
#define FAULTRING_MAX_ENTRIES (1u << 20)  /* entry and response counts: powers of two in [MIN, MAX] */

/** Producer region state (faultring_producer_header.state). */
#define FAULTRING_STATE_STARTING 1u  /* geometry valid, waiting for negotiation */
#define FAULTRING_STATE_RUNNING 2u   /* ABI in force, records flow */
#define FAULTRING_STATE_CLOSED 3u    /* producer gone; no record will follow */

/** Feature bits. None are defined yet; requesting an unknown bit is counted
 * (counters.bad_feature_requests) and the bit is not granted. */
#define FAULTRING_FEATURES_KNOWN 0ULL

/* Fault record types: 1 and 2 are the kernel's enum iommu_fault_type values. */
#define FAULTRING_FAULT_DMA_UNRECOV 1u
#define FAULTRING_FAULT_PAGE_REQ 2u
#define FAULTRING_FAULT_LOST 3u /* ABI 2 only: struct faultring_v2_lost */

/* Permissions, kernel IOMMU_FAULT_PERM_* values (v1 and v2). */
#define FAULTRING_PERM_READ (1u << 0)
#define FAULTRING_PERM_WRITE (1u << 1)
#define FAULTRING_PERM_EXEC (1u << 2)
#define FAULTRING_PERM_PRIV (1u << 3)
#define FAULTRING_PERM_MASK 0xFu

/* Unrecoverable fault reasons, kernel enum iommu_fault_reason values. */
#define FAULTRING_REASON_UNKNOWN 0u
#define FAULTRING_REASON_PASID_FETCH 1u
#define FAULTRING_REASON_BAD_PASID_ENTRY 2u
#define FAULTRING_REASON_PASID_INVALID 3u
#define FAULTRING_REASON_WALK_EABT 4u
#define FAULTRING_REASON_PTE_FETCH 5u
#define FAULTRING_REASON_PERMISSION 6u
#define FAULTRING_REASON_ACCESS 7u
#define FAULTRING_REASON_OOR_ADDRESS 8u

/* ABI 1 flags: the kernel's IOMMU_FAULT_UNRECOV_* and
 * IOMMU_FAULT_PAGE_REQUEST_* values, bit for bit. */
#define FAULTRING_V1_UNRECOV_PASID_VALID (1u << 0)
#define FAULTRING_V1_UNRECOV_ADDR_VALID (1u << 1)
#define FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID (1u << 2)
#define FAULTRING_V1_PRQ_PASID_VALID (1u << 0)
#define FAULTRING_V1_PRQ_LAST_PAGE (1u << 1)
#define FAULTRING_V1_PRQ_PRIV_DATA (1u << 2)
#define FAULTRING_V1_PRQ_NEEDS_PASID (1u << 3)

/* ABI 2 record flags (faultring_v2_fault.flags); one namespace for all types. */
#define FAULTRING_V2_PASID_VALID (1u << 0)      /* PAGE_REQ, DMA_UNRECOV */
#define FAULTRING_V2_LAST_PAGE (1u << 1)        /* PAGE_REQ: closes the group */
#define FAULTRING_V2_NEEDS_PASID (1u << 2)      /* PAGE_REQ: the device wants its PASID back (the service echoes it; an ABI 2 answer needs only the cookie) */
#define FAULTRING_V2_ADDR_VALID (1u << 3)       /* DMA_UNRECOV */
#define FAULTRING_V2_FETCH_ADDR_VALID (1u << 4) /* DMA_UNRECOV */
#define FAULTRING_V2_FLAGS_KNOWN 0x1Fu

/* Page response codes, the kernel's enum iommu_page_response_code. */
#define FAULTRING_RESP_SUCCESS 0u
#define FAULTRING_RESP_INVALID 1u
#define FAULTRING_RESP_FAILURE 2u

/* Response versions and flags. */
#define FAULTRING_RESP_VERSION_1 1u /* kernel IOMMU_PAGE_RESP_VERSION_1 */
#define FAULTRING_RESP_VERSION_2 2u
#define FAULTRING_RESP_PASID_VALID (1u << 0) /* v1 and v2 */
#define FAULTRING_RESP_GRPID_VALID (1u << 1) /* v2 only: grpid is checked */

/* Field ranges from PCIe PRI: a PASID is 20 bits, a PRG index 9 bits. */
#define FAULTRING_PASID_MAX 0xFFFFFu
#define FAULTRING_PRGI_MAX 0x1FFu

/* ------------------------------------------------------------------------ */
/* Producer region                                                           */
/* ------------------------------------------------------------------------ */

/**
 * struct faultring_counters - what the producer saw, for the operator.
 *
 * Written only by the producer (plain or relaxed stores; they are statistics,
 * never synchronisation). A consumer or `faultring inspect` reads them.
 *
 * @records_published:  0   records written into the fault ring (LOST included)
 * @records_lost:       8   records dropped because the ring was full
 * @groups_overflowed:  16  page-request groups that did not fit whole and were
 *                          answered INVALID at once (by the page-request layer)
 * @doorbells_rung:     24  doorbell rings of a sleeping consumer
 * @responses_valid:    32  response slots that passed slot validation (whether
 *                          they then matched a group is counted by match_*)
 * @publish_refused:    40  publish attempts before negotiation (not written)
 * @bad_consumer_index: 48  fault-ring consumer index moved backwards or
 *                          beyond the producer index (ignored)
 * @bad_response_index: 56  response-ring producer index moved backwards or
 *                          more than a ring ahead (ignored)
 * @renegotiations:     64  a second, different requested_abi (ignored)
 * @bad_abi_requests:   72  requested_abi outside 1..max_abi (ignored)
 * @bad_feature_requests: 80 requested_features with unknown bits
 * @resp_bad_argsz:     88  response argsz below its version's size or above
 *                          the slot size
 * @resp_trailing_nonzero: 96 non-zero bytes between the known size and argsz
 * @resp_bad_version:   104 response version not the one in force
 * @resp_unknown_flags: 112 response flags with unknown bits
 * @resp_reserved_nonzero: 120 a field that must be zero was not (pasid or
 *                          grpid without its VALID flag)
 * @resp_bad_code:      128 code not SUCCESS, INVALID or FAILURE
 * @resp_out_of_range:  136 pasid > 20 bits or grpid > 9 bits
 * @match_completed:    144 valid responses that completed their group
 * @match_unknown:      152 ... that named no group ever issued here
 * @match_duplicate:    160 ... for a group a consumer had already answered
 * @match_late:         168 ... for a group answered INVALID at its timeout
 * @match_stale:        176 ... for a group answered otherwise (overflow,
 *                          detach, removal) or too long ago to tell
 * @match_foreign_device: 184 ... for a group of a device on another queue
 * @match_mismatch:     192 ... whose flagged PASID or PRGI is not the group's
 *                          (or, ABI 1, a NEEDS_PASID group's missing PASID)
 * @reserved:           200 zero
 */
struct faultring_counters {
	uint64_t records_published;
	uint64_t records_lost;
	uint64_t groups_overflowed;
	uint64_t doorbells_rung;
	uint64_t responses_valid;
	uint64_t publish_refused;
	uint64_t bad_consumer_index;
	uint64_t bad_response_index;
	uint64_t renegotiations;
	uint64_t bad_abi_requests;
	uint64_t bad_feature_requests;
	uint64_t resp_bad_argsz;
	uint64_t resp_trailing_nonzero;
	uint64_t resp_bad_version;
	uint64_t resp_unknown_flags;
	uint64_t resp_reserved_nonzero;
	uint64_t resp_bad_code;
	uint64_t resp_out_of_range;
	uint64_t match_completed;
	uint64_t match_unknown;
	uint64_t match_duplicate;
	uint64_t match_late;
	uint64_t match_stale;
	uint64_t match_foreign_device;
	uint64_t match_mismatch;
	uint64_t reserved[7];
};

/**
 * struct faultring_index_line - one shared index alone on a cache line.
 * @value: the index (or flag). See the owning struct for writer and ordering.
 * @pad: keeps the next index off this cache line (no false sharing).
 */
struct faultring_index_line {
	uint32_t value;
	uint8_t pad[FAULTRING_CACHELINE - sizeof(uint32_t)];
};

/**
 * struct faultring_producer_header - first page of the producer region.
 *
 * Every field is written by the producer (the service) only. Geometry fields
 * are written once, before the region is handed to anyone, and never change.
 *
 * @magic:                 0   FAULTRING_PRODUCER_MAGIC
 * @layout_version:        8   FAULTRING_LAYOUT_VERSION
 * @header_size:           12  sizeof(struct faultring_producer_header)
 * @max_abi:               16  highest record ABI offered (1..FAULTRING_ABI_MAX);
 *                             a service queue offers exactly the ABI its
 *                             first ATTACH named, so an ABI 1 queue says 1
 * @abi:                   20  ABI in force; 0 until negotiated. Release-store
 *                             by the producer after it copied the consumer's
 *                             request; acquire-load by the consumer, which may
 *                             read records only once it is non-zero.
 * @entry_size:            24  bytes per fault record (64)
 * @entry_count:           28  records in the fault ring (power of two)
 * @ring_offset:           32  byte offset of the fault ring in this region
 * @response_slot_size:    36  bytes per response slot (64)
 * @response_count:        40  slots in the response ring (power of two)
 * @response_ring_offset:  44  byte offset of the response ring in the
 *                             CONSUMER region
 * @state:                 48  FAULTRING_STATE_*. STARTING and CLOSED are
 *                             release-stored (CLOSED after the last record,
 *                             then the consumer doorbell is rung
 *                             unconditionally); RUNNING is stored seq_cst
 *                             after abi, then consumer_sleeping is checked,
 *                             so a consumer asleep in negotiation wakes.
 *                             A killed producer never stores CLOSED.
 * @producer_pid:          52  pid of the producing process (diagnostics)
 * @features_offered:      56  feature bits the producer supports
 * @features_in_force:     64  bits granted at negotiation
 * @producer_region_size:  72  bytes of this region (what to mmap)
 * @consumer_region_size:  80  bytes of the consumer region
 * @reserved0:             88  zero
 * @counters:              128 struct faultring_counters (statistics)
 * @fault_prod:            384 fault-ring producer index. Producer:
 *                             release-store after writing the records; once
 *                             per run of publishes, a seq_cst fence, then a
 *                             load of consumer_sleeping (the doorbell
 *                             check). Consumer: acquire-load before reading
 *                             the records (seq_cst in the sleep re-check).
 * @resp_cons:             448 response-ring consumer index. Producer:
 *                             release-store after it copied the slots out, so
 *                             the consumer may reuse them; consumer:
 *                             acquire-load before overwriting a slot.
 * @producer_sleeping:     512 1 while the producer is about to block on its
 *                             doorbell. Producer: seq_cst store 1, seq_cst
 *                             re-load of resp_prod/requested_abi, then
 *                             block; relaxed store 0 once awake. Consumer:
 *                             after its index store, a seq_cst fence (or a
 *                             seq_cst store of the index), then the load;
 *                             if 1, write the producer doorbell.
 */
struct faultring_producer_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;
	uint32_t max_abi;
	uint32_t abi;
	uint32_t entry_size;
	uint32_t entry_count;
	uint32_t ring_offset;
	uint32_t response_slot_size;
	uint32_t response_count;
	uint32_t response_ring_offset;
	uint32_t state;
	uint32_t producer_pid;
	uint64_t features_offered;
	uint64_t features_in_force;
	uint64_t producer_region_size;
	uint64_t consumer_region_size;
	uint8_t reserved0[40];
	struct faultring_counters counters;
	struct faultring_index_line fault_prod;
	struct faultring_index_line resp_cons;
	struct faultring_index_line producer_sleeping;
};

/* ------------------------------------------------------------------------ */
/* Consumer region                                                           */
/* ------------------------------------------------------------------------ */

/**
 * struct faultring_consumer_header - first bytes of the consumer region.
 *
 * Every field is written by the consumer only. The producer validates each
 * value it reads and never lets one steer a read or write outside a ring.
 *
 * @requested_abi:       0   ABI the consumer wants (1..max_abi), written once
 *                           (seq_cst, or release + a seq_cst fence), then the
 *                           doorbell check on producer_sleeping (ringing
 *                           unconditionally is also correct: one spare
 *                           wake-up). A later, different value is ignored
 *                           and counted.
 * @reserved0:           4   zero
 * @requested_features:  8   feature bits wanted (subset of features_offered);
 *                           written before requested_abi
 * @reserved1:           16  zero
 * @fault_cons:          64  fault-ring consumer index. Consumer:
 *                           release-store after it finished reading the
 *                           records (so the producer may overwrite them);
 *                           producer: acquire-load, then validate
 *                           old_cons <= new_cons <= fault_prod (mod 2^32).
 * @resp_prod:           128 response-ring producer index. Consumer:
 *                           release-store after writing the slots, then the
 *                           doorbell check (a seq_cst fence, then a load of
 *                           producer_sleeping; a seq_cst store of resp_prod
 *                           and a seq_cst load do as well); producer:
 *                           acquire-load, then validate
 *                           resp_cons <= new <= resp_cons + count.
 * @consumer_sleeping:   192 1 while the consumer is about to block. Consumer:
 *                           seq_cst store 1, seq_cst re-load of fault_prod,
 *                           then block on its doorbell; store 0 once awake.
 *                           Producer: after its stores of fault_prod, a
 *                           seq_cst fence, then the load; if non-zero,
 *                           ring the consumer doorbell.
 */
struct faultring_consumer_header {
	uint32_t requested_abi;
	uint32_t reserved0;
	uint64_t requested_features;
	uint8_t reserved1[48];
	struct faultring_index_line fault_cons;
	struct faultring_index_line resp_prod;
	struct faultring_index_line consumer_sleeping;
};

/* ------------------------------------------------------------------------ */
/* ABI 1: the kernel's struct iommu_fault and struct iommu_page_response    */
/* ------------------------------------------------------------------------ */

/**
 * struct faultring_v1_unrecoverable - kernel struct iommu_fault_unrecoverable.
 * @reason:     0   FAULTRING_REASON_*
 * @flags:      4   FAULTRING_V1_UNRECOV_*
 * @pasid:      8   valid if FAULTRING_V1_UNRECOV_PASID_VALID
 * @perm:       12  FAULTRING_PERM_*
 * @addr:       16  valid if FAULTRING_V1_UNRECOV_ADDR_VALID
 * @fetch_addr: 24  valid if FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID
 */
struct faultring_v1_unrecoverable {
	uint32_t reason;
	uint32_t flags;
	uint32_t pasid;
	uint32_t perm;
	uint64_t addr;
	uint64_t fetch_addr;
};

/**
 * struct faultring_v1_page_request - kernel struct iommu_fault_page_request.
 * @flags:        0   FAULTRING_V1_PRQ_*
 * @pasid:        4   valid if FAULTRING_V1_PRQ_PASID_VALID
 * @grpid:        8   page request group index (PRGI, 9 bits)
 * @perm:         12  FAULTRING_PERM_*
 * @addr:         16  page address
 * @private_data: 24  device private data, valid if FAULTRING_V1_PRQ_PRIV_DATA.
 *                    ABI 1 exposes it as the kernel did; the service echoes
 *                    its own copy to the device, never the consumer's.
 */
struct faultring_v1_page_request {
	uint32_t flags;
	uint32_t pasid;
	uint32_t grpid;
	uint32_t perm;
	uint64_t addr;
	uint64_t private_data[2];
};

/**
 * struct faultring_v1_fault - ABI 1 record, byte-identical to the kernel's
 * struct iommu_fault (64 bytes).
 * @type:    0  FAULTRING_FAULT_DMA_UNRECOV or FAULTRING_FAULT_PAGE_REQ
 * @padding: 4  zero
 * @event:   8  when type is DMA_UNRECOV
 * @prm:     8  when type is PAGE_REQ
 * @padding2: 8 sizes the union to 56 bytes; unused bytes are zero
 */
struct faultring_v1_fault {
	uint32_t type;
	uint32_t padding;
	union {
		struct faultring_v1_unrecoverable event;
		struct faultring_v1_page_request prm;
		uint8_t padding2[56];
	};
};

/**
 * struct faultring_v1_response - ABI 1 response, byte-identical to the
 * kernel's struct iommu_page_response (24 bytes), at the start of a 64-byte
 * response slot.
 * @argsz:   0   24 ..= 64; bytes [24, argsz) of the slot must be zero
 * @version: 4   FAULTRING_RESP_VERSION_1
 * @flags:   8   FAULTRING_RESP_PASID_VALID or 0
 * @pasid:   12  the request's PASID when PASID_VALID; else 0
 * @grpid:   16  the request's PRGI (matched with pasid within the device)
 * @code:    20  FAULTRING_RESP_*
 */
struct faultring_v1_response {
	uint32_t argsz;
	uint32_t version;
	uint32_t flags;
	uint32_t pasid;
	uint32_t grpid;
	uint32_t code;
};

/* ------------------------------------------------------------------------ */
/* ABI 2: extended records                                                   */
/* ------------------------------------------------------------------------ */

/**
 * struct faultring_v2_fault - ABI 2 record (64 bytes).
 * @type:        0   FAULTRING_FAULT_DMA_UNRECOV, _PAGE_REQ or _LOST
 * @sequence:    4   per-queue counter, +1 for every record the producer
 *                   meant to write (wraps at 2^32); a gap means loss
 * @device_id:   8   service-assigned device id (a queue may carry many)
 * @flags:       12  FAULTRING_V2_*
 * @pasid:       16  valid if FAULTRING_V2_PASID_VALID
 * @grpid:       20  PAGE_REQ: PRGI; otherwise 0
 * @perm:        24  FAULTRING_PERM_*
 * @reason:      28  DMA_UNRECOV: FAULTRING_REASON_*; otherwise 0
 * @addr:        32  page (PAGE_REQ) or faulting address (DMA_UNRECOV)
 * @fetch_addr:  40  DMA_UNRECOV with FETCH_ADDR_VALID; otherwise 0
 * @cookie:      48  PAGE_REQ: the group's cookie, the same in every record
 *                   of the group; echo it in the response. Otherwise 0.
 * @timestamp_ns: 56 CLOCK_MONOTONIC time the source reported the fault
 *
 * Device private data is deliberately absent: the service keeps it and
 * echoes it to the device itself, so a guest never sees hardware context.
 */
struct faultring_v2_fault {
	uint32_t type;
	uint32_t sequence;
	uint32_t device_id;
	uint32_t flags;
	uint32_t pasid;
	uint32_t grpid;
	uint32_t perm;
	uint32_t reason;
	uint64_t addr;
	uint64_t fetch_addr;
	uint64_t cookie;
	uint64_t timestamp_ns;
};

/**
 * struct faultring_v2_lost - ABI 2 LOST record (type FAULTRING_FAULT_LOST).
 *
 * Written in the first slot that frees after the producer dropped records.
 * @type:                0   FAULTRING_FAULT_LOST
 * @sequence:            4   its own sequence number (first_lost_sequence +
 *                           lost_records, mod 2^32)
 * @reserved0:           8   zero
 * @flags:               12  zero
 * @lost_records:        16  records dropped since the previous LOST record
 * @first_lost_sequence: 24  sequence number of the first dropped record
 * @reserved1:           28  zero
 * @total_lost:          32  all records lost on this queue so far
 * @reserved2:           40  zero
 * @timestamp_ns:        56  CLOCK_MONOTONIC time the LOST record was written
 */
struct faultring_v2_lost {
	uint32_t type;
	uint32_t sequence;
	uint32_t reserved0;
	uint32_t flags;
	uint64_t lost_records;
	uint32_t first_lost_sequence;
	uint32_t reserved1;
	uint64_t total_lost;
	uint64_t reserved2[2];
	uint64_t timestamp_ns;
};

/**
 * struct faultring_v2_response - ABI 2 response (32 bytes) at the start of a
 * 64-byte response slot.
 * @argsz:   0   32 ..= 64; bytes [32, argsz) of the slot must be zero
 * @version: 4   FAULTRING_RESP_VERSION_2
 * @flags:   8   FAULTRING_RESP_PASID_VALID | FAULTRING_RESP_GRPID_VALID
 * @code:    12  FAULTRING_RESP_*
 * @cookie:  16  the cookie of the group being answered
 * @pasid:   24  checked against the group if PASID_VALID; else must be 0
 * @grpid:   28  checked against the group if GRPID_VALID; else must be 0
 */
struct faultring_v2_response {
	uint32_t argsz;
	uint32_t version;
	uint32_t flags;
	uint32_t code;
	uint64_t cookie;
	uint32_t pasid;
	uint32_t grpid;
};

/* ------------------------------------------------------------------------ */
/* Layout pins: a moved byte fails the build of every consumer.             */
/* ------------------------------------------------------------------------ */


FAULTRING_PIN_SIZE(faultring_counters, 256);
FAULTRING_PIN_SIZE(faultring_index_line, 64);
FAULTRING_PIN(faultring_counters, records_published, 0);
FAULTRING_PIN(faultring_counters, records_lost, 8);
FAULTRING_PIN(faultring_counters, groups_overflowed, 16);
FAULTRING_PIN(faultring_counters, doorbells_rung, 24);
FAULTRING_PIN(faultring_counters, responses_valid, 32);
FAULTRING_PIN(faultring_counters, match_completed, 144);
FAULTRING_PIN(faultring_counters, match_mismatch, 192);
FAULTRING_PIN(faultring_counters, publish_refused, 40);
FAULTRING_PIN(faultring_counters, bad_consumer_index, 48);
FAULTRING_PIN(faultring_counters, bad_response_index, 56);
FAULTRING_PIN(faultring_counters, renegotiations, 64);
FAULTRING_PIN(faultring_counters, bad_abi_requests, 72);
FAULTRING_PIN(faultring_counters, bad_feature_requests, 80);
FAULTRING_PIN(faultring_counters, resp_bad_argsz, 88);
FAULTRING_PIN(faultring_counters, resp_trailing_nonzero, 96);
FAULTRING_PIN(faultring_counters, resp_bad_version, 104);
FAULTRING_PIN(faultring_counters, resp_unknown_flags, 112);
FAULTRING_PIN(faultring_counters, resp_reserved_nonzero, 120);
FAULTRING_PIN(faultring_counters, resp_bad_code, 128);
FAULTRING_PIN(faultring_counters, resp_out_of_range, 136);

FAULTRING_PIN_SIZE(faultring_producer_header, 576);
FAULTRING_PIN(faultring_producer_header, magic, 0);
FAULTRING_PIN(faultring_producer_header, layout_version, 8);
FAULTRING_PIN(faultring_producer_header, header_size, 12);
FAULTRING_PIN(faultring_producer_header, max_abi, 16);
FAULTRING_PIN(faultring_producer_header, abi, 20);
FAULTRING_PIN(faultring_producer_header, entry_size, 24);
FAULTRING_PIN(faultring_producer_header, entry_count, 28);
FAULTRING_PIN(faultring_producer_header, ring_offset, 32);
FAULTRING_PIN(faultring_producer_header, response_slot_size, 36);
FAULTRING_PIN(faultring_producer_header, response_count, 40);
FAULTRING_PIN(faultring_producer_header, response_ring_offset, 44);
FAULTRING_PIN(faultring_producer_header, state, 48);
FAULTRING_PIN(faultring_producer_header, producer_pid, 52);
FAULTRING_PIN(faultring_producer_header, features_offered, 56);
FAULTRING_PIN(faultring_producer_header, features_in_force, 64);
FAULTRING_PIN(faultring_producer_header, producer_region_size, 72);
FAULTRING_PIN(faultring_producer_header, consumer_region_size, 80);
FAULTRING_PIN(faultring_producer_header, counters, 128);
FAULTRING_PIN(faultring_producer_header, fault_prod, 384);
FAULTRING_PIN(faultring_producer_header, resp_cons, 448);
FAULTRING_PIN(faultring_producer_header, producer_sleeping, 512);

FAULTRING_PIN_SIZE(faultring_consumer_header, 256);
FAULTRING_PIN(faultring_consumer_header, requested_abi, 0);
FAULTRING_PIN(faultring_consumer_header, requested_features, 8);
FAULTRING_PIN(faultring_consumer_header, fault_cons, 64);
FAULTRING_PIN(faultring_consumer_header, resp_prod, 128);
FAULTRING_PIN(faultring_consumer_header, consumer_sleeping, 192);

FAULTRING_PIN_SIZE(faultring_v1_unrecoverable, 32);
FAULTRING_PIN_SIZE(faultring_v1_page_request, 40);
FAULTRING_PIN_SIZE(faultring_v1_fault, 64);
FAULTRING_PIN(faultring_v1_fault, type, 0);
FAULTRING_PIN(faultring_v1_fault, padding, 4);
FAULTRING_PIN(faultring_v1_fault, event, 8);
FAULTRING_PIN(faultring_v1_fault, prm, 8);
FAULTRING_PIN(faultring_v1_page_request, private_data, 24);
FAULTRING_PIN_SIZE(faultring_v1_response, 24);
FAULTRING_PIN(faultring_v1_response, code, 20);

FAULTRING_PIN_SIZE(faultring_v2_fault, 64);
FAULTRING_PIN(faultring_v2_fault, type, 0);
FAULTRING_PIN(faultring_v2_fault, sequence, 4);
FAULTRING_PIN(faultring_v2_fault, device_id, 8);
FAULTRING_PIN(faultring_v2_fault, flags, 12);
FAULTRING_PIN(faultring_v2_fault, pasid, 16);
FAULTRING_PIN(faultring_v2_fault, grpid, 20);
FAULTRING_PIN(faultring_v2_fault, perm, 24);
FAULTRING_PIN(faultring_v2_fault, reason, 28);
FAULTRING_PIN(faultring_v2_fault, addr, 32);
FAULTRING_PIN(faultring_v2_fault, fetch_addr, 40);
FAULTRING_PIN(faultring_v2_fault, cookie, 48);
FAULTRING_PIN(faultring_v2_fault, timestamp_ns, 56);
FAULTRING_PIN_SIZE(faultring_v2_lost, 64);
FAULTRING_PIN(faultring_v2_lost, lost_records, 16);
FAULTRING_PIN(faultring_v2_lost, first_lost_sequence, 24);
FAULTRING_PIN(faultring_v2_lost, total_lost, 32);
FAULTRING_PIN(faultring_v2_lost, timestamp_ns, 56);
FAULTRING_PIN_SIZE(faultring_v2_response, 32);
FAULTRING_PIN(faultring_v2_response, code, 12);
FAULTRING_PIN(faultring_v2_response, cookie, 16);
FAULTRING_PIN(faultring_v2_response, pasid, 24);
FAULTRING_PIN(faultring_v2_response, grpid, 28);

#endif /* FAULTRING_ABI_H */
