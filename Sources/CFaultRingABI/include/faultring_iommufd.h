/* SPDX-License-Identifier: MIT */
/*
 * faultring_iommufd.h - the Linux iommufd uAPI records faultring reads and
 * writes, restated with faultring_ prefixes.
 *
 * Source: torvalds/linux include/uapi/linux/iommufd.h at b4d90dbc4c1b
 * (IOMMU_FAULT_QUEUE_ALLOC since 6.11; the 40-byte iommu_hwpt_pgfault with
 * __reserved and an aligned addr since e721f619e3ec, Jan 2025, in 6.14;
 * IOMMU_VEVENTQ_ALLOC since 6.15). Debian 12's linux-libc-dev (6.1) has no
 * iommufd fault queue at all, so the layouts are restated here and pinned
 * with _Static_assert; where a newer <linux/iommufd.h> is installed, the
 * test suite compiles both and compares every size and offset.
 *
 * The same records also travel over a faultring device socket (a
 * SOCK_SEQPACKET socket a device process, or a vfio-user server, passes to
 * the service): see Docs/PROTOCOL.md, "Fault sources".
 *
 * Fault queue (IOMMU_FAULT_QUEUE_ALLOC, read/write on the returned fd):
 * - read() returns whole page-request groups of struct faultring_hwpt_pgfault,
 *   the LAST_PAGE request last; never a partial group; 0 when nothing is
 *   queued (or the buffer cannot hold the next whole group). The count must
 *   be a multiple of 40 bytes (-ESPIPE otherwise). The kernel
 *   assigns one cookie per group (>= 1, 32 bits).
 * - write() takes an array of struct faultring_hwpt_page_response; it stops
 *   at the first entry whose cookie is unknown (or code is not SUCCESS or
 *   INVALID) and returns the bytes done before it, or -EINVAL if none.
 * - Destroying the fault object (or detaching / replacing the HWPT) answers
 *   every undelivered and unanswered group INVALID.
 * vEVENTQ (IOMMU_VEVENTQ_ALLOC, read-only fd):
 * - each record is struct faultring_vevent_header then a type-specific
 *   payload (SMMUv3: 32 bytes); a header with LOST_EVENTS and no payload
 *   marks loss at the tail; sequence runs 0..INT_MAX, wrapping to 0, and a
 *   gap of d means d - 1 events were lost.
 */
#ifndef FAULTRING_IOMMUFD_H
#define FAULTRING_IOMMUFD_H

#include <stddef.h>
#include <stdint.h>

#include "faultring_pin.h"

/* ioctl numbers the VMM uses before it hands an fd to faultring (_IO(';', nr)). */
#define FAULTRING_IOMMUFD_TYPE ';'
#define FAULTRING_IOMMUFD_CMD_FAULT_QUEUE_ALLOC 0x8eu
#define FAULTRING_IOMMUFD_CMD_VEVENTQ_ALLOC 0x93u

/* struct iommu_hwpt_pgfault.flags */
#define FAULTRING_IOMMU_PGFAULT_FLAGS_PASID_VALID (1u << 0)
#define FAULTRING_IOMMU_PGFAULT_FLAGS_LAST_PAGE (1u << 1)
/* Not in the uAPI enum, but copied raw from the kernel's prm.flags (6.10+). */
#define FAULTRING_IOMMU_PGFAULT_FLAGS_NEEDS_PASID (1u << 2)

/* struct iommu_hwpt_pgfault.perm */
#define FAULTRING_IOMMU_PGFAULT_PERM_READ (1u << 0)
#define FAULTRING_IOMMU_PGFAULT_PERM_WRITE (1u << 1)
#define FAULTRING_IOMMU_PGFAULT_PERM_EXEC (1u << 2)
#define FAULTRING_IOMMU_PGFAULT_PERM_PRIV (1u << 3)

/* enum iommufd_page_response_code (FAILURE was removed before 6.11 final) */
#define FAULTRING_IOMMUFD_PAGE_RESP_SUCCESS 0u
#define FAULTRING_IOMMUFD_PAGE_RESP_INVALID 1u

/* enum iommu_veventq_flag, enum iommu_veventq_type */
#define FAULTRING_IOMMU_VEVENTQ_FLAG_LOST_EVENTS (1u << 0)
#define FAULTRING_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 1u
#define FAULTRING_IOMMU_VEVENTQ_SEQUENCE_MAX 0x7FFFFFFFu /* INT_MAX, then 0 */

/**
 * struct faultring_hwpt_pgfault - one page request (struct iommu_hwpt_pgfault), 40 bytes.
 * @flags:      0  PASID_VALID, LAST_PAGE (and the kernel-internal NEEDS_PASID)
 * @dev_id:     4  iommufd device object id
 * @pasid:      8  valid with PASID_VALID
 * @grpid:      12 the PRG index
 * @perm:       16 READ / WRITE / EXEC / PRIV
 * @__reserved: 20 zero
 * @addr:       24 page-aligned faulting address
 * @length:     32 a hint; the kernel writes 0
 * @cookie:     36 the same for every request of a group; echo it in the response
 */
struct faultring_hwpt_pgfault {
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pasid;
	uint32_t grpid;
	uint32_t perm;
	uint32_t __reserved;
	uint64_t addr __attribute__((aligned(8)));
	uint32_t length;
	uint32_t cookie;
};

/**
 * struct faultring_hwpt_page_response - a group's answer (struct iommu_hwpt_page_response), 8 bytes.
 * @cookie: 0 the group's cookie, as read
 * @code:   4 FAULTRING_IOMMUFD_PAGE_RESP_SUCCESS or _INVALID
 */
struct faultring_hwpt_page_response {
	uint32_t cookie;
	uint32_t code;
};

/**
 * struct faultring_vevent_header - precedes every vEVENTQ record (struct iommufd_vevent_header), 8 bytes.
 * @flags:    0 LOST_EVENTS: events were lost here; no payload follows
 * @sequence: 4 0..INT_MAX, wrapping to 0
 */
struct faultring_vevent_header {
	uint32_t flags;
	uint32_t sequence;
};

/** struct faultring_vevent_arm_smmuv3 - an SMMUv3 event record, little-endian (struct iommu_vevent_arm_smmuv3), 32 bytes. */
struct faultring_vevent_arm_smmuv3 {
	uint64_t evt[4];
};

/** struct faultring_iommu_fault_alloc - IOMMU_FAULT_QUEUE_ALLOC's argument (struct iommu_fault_alloc), 16 bytes. */
struct faultring_iommu_fault_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_fault_id;
	uint32_t out_fault_fd;
};

/** struct faultring_iommu_veventq_alloc - IOMMU_VEVENTQ_ALLOC's argument (struct iommu_veventq_alloc), 32 bytes. */
struct faultring_iommu_veventq_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t viommu_id;
	uint32_t type;
	uint32_t veventq_depth;
	uint32_t out_veventq_id;
	uint32_t out_veventq_fd;
	uint32_t __reserved;
};

FAULTRING_PIN_SIZE(faultring_hwpt_pgfault, 40);
FAULTRING_PIN(faultring_hwpt_pgfault, flags, 0);
FAULTRING_PIN(faultring_hwpt_pgfault, dev_id, 4);
FAULTRING_PIN(faultring_hwpt_pgfault, pasid, 8);
FAULTRING_PIN(faultring_hwpt_pgfault, grpid, 12);
FAULTRING_PIN(faultring_hwpt_pgfault, perm, 16);
FAULTRING_PIN(faultring_hwpt_pgfault, __reserved, 20);
FAULTRING_PIN(faultring_hwpt_pgfault, addr, 24);
FAULTRING_PIN(faultring_hwpt_pgfault, length, 32);
FAULTRING_PIN(faultring_hwpt_pgfault, cookie, 36);
FAULTRING_PIN_SIZE(faultring_hwpt_page_response, 8);
FAULTRING_PIN(faultring_hwpt_page_response, cookie, 0);
FAULTRING_PIN(faultring_hwpt_page_response, code, 4);
FAULTRING_PIN_SIZE(faultring_vevent_header, 8);
FAULTRING_PIN(faultring_vevent_header, flags, 0);
FAULTRING_PIN(faultring_vevent_header, sequence, 4);
FAULTRING_PIN_SIZE(faultring_vevent_arm_smmuv3, 32);
FAULTRING_PIN_SIZE(faultring_iommu_fault_alloc, 16);
FAULTRING_PIN(faultring_iommu_fault_alloc, size, 0);
FAULTRING_PIN(faultring_iommu_fault_alloc, flags, 4);
FAULTRING_PIN(faultring_iommu_fault_alloc, out_fault_id, 8);
FAULTRING_PIN(faultring_iommu_fault_alloc, out_fault_fd, 12);
FAULTRING_PIN_SIZE(faultring_iommu_veventq_alloc, 32);
FAULTRING_PIN(faultring_iommu_veventq_alloc, size, 0);
FAULTRING_PIN(faultring_iommu_veventq_alloc, flags, 4);
FAULTRING_PIN(faultring_iommu_veventq_alloc, viommu_id, 8);
FAULTRING_PIN(faultring_iommu_veventq_alloc, type, 12);
FAULTRING_PIN(faultring_iommu_veventq_alloc, veventq_depth, 16);
FAULTRING_PIN(faultring_iommu_veventq_alloc, out_veventq_id, 20);
FAULTRING_PIN(faultring_iommu_veventq_alloc, out_veventq_fd, 24);
FAULTRING_PIN(faultring_iommu_veventq_alloc, __reserved, 28);

#endif /* FAULTRING_IOMMUFD_H */
