/* SPDX-License-Identifier: MIT */
/* frc_internal.h - helpers shared by frc_control.c and frc_queue.c; not installed. */
#ifndef FRC_INTERNAL_H
#define FRC_INTERNAL_H

#include <stdint.h>

/* Writes the sentence into @error (FRC_ERROR_MAX bytes) and returns -@err. */
int frc_fail(char *error, int err, const char *format, ...) __attribute__((format(printf, 3, 4)));
/* CLOCK_MONOTONIC, in milliseconds. */
int64_t frc_now_ms(void);
/* Milliseconds left until @deadline (frc_now_ms() based; < 0: none, so -1). */
int frc_remaining_ms(int64_t deadline);

#endif /* FRC_INTERNAL_H */
