/* SPDX-License-Identifier: MIT */
/*
 * abi.c - no code. A package target needs one translation unit; this one
 * compiles the contract headers as C11 on their own, so their
 * _Static_assert pins run in every build, not only where a client includes
 * them.
 */
#include "faultring_abi.h"
#include "faultring_protocol.h"
#include "faultring_iommufd.h"
