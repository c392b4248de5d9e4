/* SPDX-License-Identifier: MIT */
/*
 * kernel_compat.h - offsets and sizes of the ABI 1 structs next to the
 * kernel's, measured by the C compiler against the system's <linux/iommu.h>.
 */
#ifndef FAULTRING_KERNEL_COMPAT_H
#define FAULTRING_KERNEL_COMPAT_H

#include <stddef.h>

/**
 * struct faultring_compat_row - one field (or a whole struct when
 * @field is "sizeof") as the kernel and faultring lay it out.
 */
struct faultring_compat_row {
	const char *name;
	size_t kernel_offset;
	size_t ours_offset;
	size_t kernel_size;
	size_t ours_size;
};

/** faultring_compat_rows - the table; returns its length. */
size_t faultring_compat_rows(const struct faultring_compat_row **rows);

#endif
