/* SPDX-License-Identifier: MIT */
/*
 * faultring_protocol.h - the control protocol between the faultring service
 * and a VMM, over an AF_UNIX SOCK_SEQPACKET socket (one message per packet).
 * Docs/PROTOCOL.md is the prose. vfio-user is the model: a fixed header with
 * an id, a command, the total size, flags and an errno.
 */
#ifndef FAULTRING_PROTOCOL_H
#define FAULTRING_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "faultring_pin.h"

#define FAULTRING_PROTOCOL_VERSION 1u
/** Largest message, header included; a larger one is refused with EMSGSIZE. */
#define FAULTRING_MSG_MAX 65536u
/** Descriptors that travel with one message (SCM_RIGHTS). */
#define FAULTRING_MSG_FDS_MAX 4u

/* Commands. */
#define FAULTRING_CMD_HELLO 1u  /* JSON both ways: version and capabilities; first message */
#define FAULTRING_CMD_ATTACH 2u /* struct faultring_msg_attach; first success returns the queue's 4 fds */
#define FAULTRING_CMD_DETACH 3u /* struct faultring_msg_detach; cannot fail */
#define FAULTRING_CMD_STATS 4u  /* reply: JSON counters (Prometheus text with flag TEXT) */
#define FAULTRING_CMD_BYE 5u    /* reply, then the service closes the connection */
#define FAULTRING_CMD_ADD_SOURCE 6u /* struct faultring_msg_add_source + exactly one fd; reply: struct faultring_msg_add_source_reply */
/* The nested IOMMU (Docs/NESTED.md): guest memory, stage-1 binds, invalidations, MSI doorbells. */
#define FAULTRING_CMD_ADD_GUEST_MEMORY 7u /* struct faultring_msg_guest_memory + exactly one memfd */
#define FAULTRING_CMD_BIND 8u             /* struct faultring_msg_bind; all or nothing across its devices */
#define FAULTRING_CMD_UNBIND 9u           /* struct faultring_msg_unbind; cannot fail once well formed */
#define FAULTRING_CMD_INVALIDATE 10u      /* struct faultring_msg_invalidate */
#define FAULTRING_CMD_BIND_MSI 11u        /* struct faultring_msg_bind_msi */

/* BIND / UNBIND formats: what the guest binds. */
#define FAULTRING_BIND_VTD_PASID 1u  /* VT-d: one PASID's first stage; data = the guest's 64-byte PASID-table entry */
#define FAULTRING_BIND_SMMUV3_STE 2u /* SMMUv3: the guest's CD table; data[0..1] = struct iommu_hwpt_arm_smmuv3 */

/* INVALIDATE granularities. */
#define FAULTRING_INV_GLOBAL 0u     /* IOTLB, every PASID (VT-d domain-selective, SMMUv3 TLBI_NH_ALL) */
#define FAULTRING_INV_PASID 1u      /* IOTLB, one PASID (VT-d PASID-selective, SMMUv3 TLBI_NH_ASID) */
#define FAULTRING_INV_RANGE 2u      /* IOTLB, address + size in one PASID (VT-d PSI with AM, SMMUv3 TLBI_NH_VA) */
#define FAULTRING_INV_DEVICE_TLB 3u /* one device's ATC (VT-d device-TLB, SMMUv3 ATC_INV) */
#define FAULTRING_INV_CONTEXT 4u    /* cached PASID entry / CD of a device (VT-d PASID-cache, SMMUv3 CFGI_CD) */
/* INVALIDATE flags; a field a flag does not cover must be 0. */
#define FAULTRING_INV_FLAG_LEAF (1u << 0)  /* RANGE: only leaf entries changed (VT-d IH, SMMUv3 Leaf) */
#define FAULTRING_INV_FLAG_PASID (1u << 1) /* pasid is set: required by PASID and RANGE, optional for DEVICE_TLB and CONTEXT */
#define FAULTRING_INV_FLAG_RANGE (1u << 2) /* address and size are set: required by RANGE, optional for DEVICE_TLB */

/* BIND_MSI flags. */
#define FAULTRING_MSI_FLAG_UNBIND (1u << 0) /* remove the binding at iova (gpa and size 0); cannot fail */

/* Fault source kinds (ADD_SOURCE). The fd is the kernel's, or a socket speaking its records. */
#define FAULTRING_SOURCE_FAULT_QUEUE 1u   /* iommufd fault queue fd (IOMMU_FAULT_QUEUE_ALLOC) */
#define FAULTRING_SOURCE_EVENT_QUEUE 2u   /* iommufd vEVENTQ fd (IOMMU_VEVENTQ_ALLOC, type ARM SMMUv3) */
#define FAULTRING_SOURCE_DEVICE_FAULTS 3u /* AF_UNIX SOCK_SEQPACKET: fault-queue records, whole groups per packet */
#define FAULTRING_SOURCE_DEVICE_EVENTS 4u /* AF_UNIX SOCK_SEQPACKET: vEVENTQ records, one per packet */

/* Header flags. */
#define FAULTRING_MSG_REPLY (1u << 0) /* this message answers the request with the same id */
#define FAULTRING_MSG_ERROR (1u << 1) /* reply only: error holds an errno, payload a UTF-8 reason */
#define FAULTRING_MSG_TEXT (1u << 2)  /* STATS request: Prometheus text format instead of JSON */

/**
 * struct faultring_msg_header - starts every message (16 bytes).
 * @id:      0  chosen by the requester; echoed in the reply
 * @command: 2  FAULTRING_CMD_*
 * @size:    4  bytes of the whole message, header included (16 .. FAULTRING_MSG_MAX)
 * @flags:   8  FAULTRING_MSG_*; unknown bits are refused (EINVAL)
 * @error:   12 0, or an errno in an error reply
 */
struct faultring_msg_header {
	uint16_t id;
	uint16_t command;
	uint32_t size;
	uint32_t flags;
	uint32_t error;
};

FAULTRING_FLEX_BEGIN

/**
 * struct faultring_msg_attach - ATTACH request payload.
 * @abi:          0  record ABI the client will request on the queue (1 or 2);
 *                   ABI 1 queues serve exactly one device
 * @device_count: 4  1 .. 64
 * @device_ids:   8  the devices; all are attached or none is
 */
struct faultring_msg_attach {
	uint32_t abi;
	uint32_t device_count;
	uint32_t device_ids[];
};

/**
 * struct faultring_msg_attach_reply - ATTACH reply payload. The first
 * successful ATTACH of a connection creates its queue and carries its four
 * descriptors (producer region read-only, consumer region, consumer
 * doorbell, producer doorbell); later ones add devices and carry none.
 * @queue_created:  0  1 if this reply carries the queue's fds
 * @entry_count:    4  fault ring entries
 * @response_count: 8  response ring slots
 * @attached:       12 devices now attached to this connection
 */
struct faultring_msg_attach_reply {
	uint32_t queue_created;
	uint32_t entry_count;
	uint32_t response_count;
	uint32_t attached;
};

/**
 * struct faultring_msg_detach - DETACH request payload.
 * @device_count: 0  0 = all of this connection's devices
 * @device_ids:   4  devices to detach (ones not attached here are ignored)
 * Their outstanding page requests are answered INVALID.
 */
struct faultring_msg_detach {
	uint32_t device_count;
	uint32_t device_ids[];
};

/**
 * struct faultring_msg_add_source - ADD_SOURCE request payload; the message
 * carries exactly one descriptor (SCM_RIGHTS), the source's.
 * @kind:         0  FAULTRING_SOURCE_*
 * @device_count: 4  1 .. 64
 * @device_ids:   8  the devices it serves: the records' dev_id (fault queue)
 *                   or StreamID (vEVENTQ). A page-request source's devices
 *                   must be new to the service (EEXIST otherwise); an event
 *                   source's may also be this connection's own page-request
 *                   sources' devices.
 * The source lives until this connection ends, or its descriptor hangs up;
 * then its devices' outstanding groups are answered INVALID and forgotten.
 */
struct faultring_msg_add_source {
	uint32_t kind;
	uint32_t device_count;
	uint32_t device_ids[];
};

/**
 * struct faultring_msg_add_source_reply - ADD_SOURCE reply payload.
 * @source_id: 0 the service's id for the source (for logs and stats)
 * @devices:   4 devices it now serves
 */
struct faultring_msg_add_source_reply {
	uint32_t source_id;
	uint32_t devices;
};

/**
 * struct faultring_msg_guest_memory - ADD_GUEST_MEMORY payload, with exactly
 * one descriptor: a tmpfs memfd sealed F_SEAL_SHRINK, which the service
 * reopens read-only and reads with pread, never through a mapping
 * (vhost-user's memory regions, with a seal so the VMM cannot truncate it
 * under the service). Regions must not overlap.
 * @argsz:  0  sizeof(struct faultring_msg_guest_memory) = 32
 * @flags:  4  0
 * @gpa:    8  guest-physical address of the region (4 KiB aligned)
 * @size:   16 bytes (4 KiB multiple, non-zero; gpa + size below 2^52)
 * @offset: 24 offset of the region in the file (4 KiB aligned)
 */
struct faultring_msg_guest_memory {
	uint32_t argsz;
	uint32_t flags;
	uint64_t gpa;
	uint64_t size;
	uint64_t offset;
};

/**
 * struct faultring_msg_bind - BIND payload: bind a guest stage-1 table on
 * every device of a set, or on none of them.
 * @argsz:        0  88 + 4 * device_count (the whole payload)
 * @flags:        4  0
 * @format:       8  FAULTRING_BIND_*
 * @pasid:        12 VT-d: the PASID (1 .. 2^20 - 1); SMMUv3: 0
 * @device_count: 16 1 .. 64, each a device this connection holds
 * @reserved:     20 0
 * @data:         24 VT-d: the 8 words of the guest's PASID-table entry;
 *                   SMMUv3: the 2 STE words, then 6 zero words
 * @device_ids:   88 the devices
 */
struct faultring_msg_bind {
	uint32_t argsz;
	uint32_t flags;
	uint32_t format;
	uint32_t pasid;
	uint32_t device_count;
	uint32_t reserved;
	uint64_t data[8];
	uint32_t device_ids[];
};

/**
 * struct faultring_msg_unbind - UNBIND payload. Once well formed it cannot
 * fail: devices that are not held, or have nothing bound, are skipped.
 * @argsz:        0  24 + 4 * device_count
 * @flags:        4  0
 * @format:       8  FAULTRING_BIND_*
 * @pasid:        12 VT-d: the PASID; SMMUv3: 0 (the CD table)
 * @device_count: 16 1 .. 64
 * @reserved:     20 0
 * @device_ids:   24 the devices
 */
struct faultring_msg_unbind {
	uint32_t argsz;
	uint32_t flags;
	uint32_t format;
	uint32_t pasid;
	uint32_t device_count;
	uint32_t reserved;
	uint32_t device_ids[];
};

FAULTRING_FLEX_END

/**
 * struct faultring_msg_invalidate - INVALIDATE payload.
 * @argsz:       0  40
 * @flags:       4  FAULTRING_INV_FLAG_*
 * @granularity: 8  FAULTRING_INV_*
 * @device:      12 DEVICE_TLB and CONTEXT: a device this connection holds; else 0
 * @pasid:       16 with FLAG_PASID; else 0
 * @reserved:    20 0
 * @address:     24 with FLAG_RANGE: aligned to size; else 0
 * @size:        32 with FLAG_RANGE: a power of two, 4 KiB .. 2^57; else 0
 */
struct faultring_msg_invalidate {
	uint32_t argsz;
	uint32_t flags;
	uint32_t granularity;
	uint32_t device;
	uint32_t pasid;
	uint32_t reserved;
	uint64_t address;
	uint64_t size;
};

/**
 * struct faultring_msg_bind_msi - BIND_MSI payload: the guest's MSI doorbell
 * at @iova is the doorbell page at @gpa (VFIO_IOMMU_BIND_MSI's model): DMA
 * writes there bypass stage 1.
 * @argsz: 0  32
 * @flags: 4  FAULTRING_MSI_FLAG_*
 * @iova:  8  the doorbell's input address (aligned to size)
 * @gpa:   16 the doorbell's guest-physical address (aligned to size)
 * @size:  24 a power of two, 4 KiB .. 1 MiB
 */
struct faultring_msg_bind_msi {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova;
	uint64_t gpa;
	uint64_t size;
};

FAULTRING_PIN_SIZE(faultring_msg_header, 16);
FAULTRING_PIN(faultring_msg_header, error, 12);
FAULTRING_PIN_SIZE(faultring_msg_attach, 8); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_attach_reply, 16);
FAULTRING_PIN_SIZE(faultring_msg_detach, 4); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_add_source, 8); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_add_source_reply, 8);
FAULTRING_PIN_SIZE(faultring_msg_guest_memory, 32);
FAULTRING_PIN_SIZE(faultring_msg_bind, 88); /* + ids */
FAULTRING_PIN(faultring_msg_bind, data, 24);
FAULTRING_PIN_SIZE(faultring_msg_unbind, 24); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_invalidate, 40);
FAULTRING_PIN(faultring_msg_invalidate, address, 24);
FAULTRING_PIN_SIZE(faultring_msg_bind_msi, 32);

#endif /* FAULTRING_PROTOCOL_H */
