/* SPDX-License-Identifier: MIT */
/*
 * Every field of struct iommu_fault (both union arms) and of struct
 * iommu_page_response, as <linux/iommu.h> from linux-libc-dev lays it out,
 * next to faultring's copy. FaultABITests fails on any difference.
 */
#include <linux/iommu.h>

#include "faultring_abi.h"
#include "kernel_compat.h"

#define MEMBER_SIZE(type, member) sizeof(((type *)0)->member)
#define ROW(kstruct, ostruct, member)                                          \
	{ #kstruct "." #member, offsetof(struct kstruct, member),               \
	  offsetof(struct ostruct, member),                                     \
	  MEMBER_SIZE(struct kstruct, member), MEMBER_SIZE(struct ostruct, member) }
#define SIZE_ROW(kstruct, ostruct)                                             \
	{ "sizeof(" #kstruct ")", 0, 0, sizeof(struct kstruct), sizeof(struct ostruct) }

static const struct faultring_compat_row rows[] = {
	SIZE_ROW(iommu_fault, faultring_v1_fault),
	ROW(iommu_fault, faultring_v1_fault, type),
	ROW(iommu_fault, faultring_v1_fault, padding),
	ROW(iommu_fault, faultring_v1_fault, event),
	ROW(iommu_fault, faultring_v1_fault, prm),
	ROW(iommu_fault, faultring_v1_fault, padding2),
	ROW(iommu_fault, faultring_v1_fault, event.reason),
	ROW(iommu_fault, faultring_v1_fault, event.flags),
	ROW(iommu_fault, faultring_v1_fault, event.pasid),
	ROW(iommu_fault, faultring_v1_fault, event.perm),
	ROW(iommu_fault, faultring_v1_fault, event.addr),
	ROW(iommu_fault, faultring_v1_fault, event.fetch_addr),
	ROW(iommu_fault, faultring_v1_fault, prm.flags),
	ROW(iommu_fault, faultring_v1_fault, prm.pasid),
	ROW(iommu_fault, faultring_v1_fault, prm.grpid),
	ROW(iommu_fault, faultring_v1_fault, prm.perm),
	ROW(iommu_fault, faultring_v1_fault, prm.addr),
	ROW(iommu_fault, faultring_v1_fault, prm.private_data),
	ROW(iommu_fault, faultring_v1_fault, prm.private_data[1]),
	SIZE_ROW(iommu_fault_unrecoverable, faultring_v1_unrecoverable),
	SIZE_ROW(iommu_fault_page_request, faultring_v1_page_request),
	SIZE_ROW(iommu_page_response, faultring_v1_response),
	ROW(iommu_page_response, faultring_v1_response, argsz),
	ROW(iommu_page_response, faultring_v1_response, version),
	ROW(iommu_page_response, faultring_v1_response, flags),
	ROW(iommu_page_response, faultring_v1_response, pasid),
	ROW(iommu_page_response, faultring_v1_response, grpid),
	ROW(iommu_page_response, faultring_v1_response, code),
	/* Constants are part of the ABI too: a size-0 row compares values. */
	{ "IOMMU_FAULT_DMA_UNRECOV", IOMMU_FAULT_DMA_UNRECOV, FAULTRING_FAULT_DMA_UNRECOV, 0, 0 },
	{ "IOMMU_FAULT_PAGE_REQ", IOMMU_FAULT_PAGE_REQ, FAULTRING_FAULT_PAGE_REQ, 0, 0 },
	{ "IOMMU_FAULT_PAGE_REQUEST_PASID_VALID", IOMMU_FAULT_PAGE_REQUEST_PASID_VALID, FAULTRING_V1_PRQ_PASID_VALID, 0, 0 },
	{ "IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE", IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE, FAULTRING_V1_PRQ_LAST_PAGE, 0, 0 },
	{ "IOMMU_FAULT_PAGE_REQUEST_PRIV_DATA", IOMMU_FAULT_PAGE_REQUEST_PRIV_DATA, FAULTRING_V1_PRQ_PRIV_DATA, 0, 0 },
	{ "IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID", IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID, FAULTRING_V1_PRQ_NEEDS_PASID, 0, 0 },
	{ "IOMMU_FAULT_UNRECOV_PASID_VALID", IOMMU_FAULT_UNRECOV_PASID_VALID, FAULTRING_V1_UNRECOV_PASID_VALID, 0, 0 },
	{ "IOMMU_FAULT_UNRECOV_ADDR_VALID", IOMMU_FAULT_UNRECOV_ADDR_VALID, FAULTRING_V1_UNRECOV_ADDR_VALID, 0, 0 },
	{ "IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID", IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID, FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID, 0, 0 },
	{ "IOMMU_FAULT_PERM_READ", IOMMU_FAULT_PERM_READ, FAULTRING_PERM_READ, 0, 0 },
	{ "IOMMU_FAULT_PERM_WRITE", IOMMU_FAULT_PERM_WRITE, FAULTRING_PERM_WRITE, 0, 0 },
	{ "IOMMU_FAULT_PERM_EXEC", IOMMU_FAULT_PERM_EXEC, FAULTRING_PERM_EXEC, 0, 0 },
	{ "IOMMU_FAULT_PERM_PRIV", IOMMU_FAULT_PERM_PRIV, FAULTRING_PERM_PRIV, 0, 0 },
	{ "IOMMU_PAGE_RESP_SUCCESS", IOMMU_PAGE_RESP_SUCCESS, FAULTRING_RESP_SUCCESS, 0, 0 },
	{ "IOMMU_PAGE_RESP_INVALID", IOMMU_PAGE_RESP_INVALID, FAULTRING_RESP_INVALID, 0, 0 },
	{ "IOMMU_PAGE_RESP_FAILURE", IOMMU_PAGE_RESP_FAILURE, FAULTRING_RESP_FAILURE, 0, 0 },
	{ "IOMMU_PAGE_RESP_VERSION_1", IOMMU_PAGE_RESP_VERSION_1, FAULTRING_RESP_VERSION_1, 0, 0 },
	{ "IOMMU_PAGE_RESP_PASID_VALID", IOMMU_PAGE_RESP_PASID_VALID, FAULTRING_RESP_PASID_VALID, 0, 0 },
	{ "IOMMU_FAULT_REASON_OOR_ADDRESS", IOMMU_FAULT_REASON_OOR_ADDRESS, FAULTRING_REASON_OOR_ADDRESS, 0, 0 },
};

size_t faultring_compat_rows(const struct faultring_compat_row **out)
{
	*out = rows;
	return sizeof(rows) / sizeof(rows[0]);
}
