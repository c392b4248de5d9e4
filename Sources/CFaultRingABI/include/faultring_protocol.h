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

FAULTRING_FLEX_END

FAULTRING_PIN_SIZE(faultring_msg_header, 16);
FAULTRING_PIN(faultring_msg_header, error, 12);
FAULTRING_PIN_SIZE(faultring_msg_attach, 8); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_attach_reply, 16);
FAULTRING_PIN_SIZE(faultring_msg_detach, 4); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_add_source, 8); /* + ids */
FAULTRING_PIN_SIZE(faultring_msg_add_source_reply, 8);

#endif /* FAULTRING_PROTOCOL_H */
