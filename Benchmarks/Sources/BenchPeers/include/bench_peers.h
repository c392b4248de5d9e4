/* SPDX-License-Identifier: MIT */
/*
 * bench_peers.h - the peers faultring's ring is measured against, driven
 * with the same 64-byte records, batch sizes and core placement:
 *   - boost::lockfree::spsc_queue<record, capacity<4096>> (libboost-dev)
 *   - write()/read() over an AF_UNIX socketpair: the syscall path a VMM
 *     uses today with the kernel's fault fd.
 * Producer runs on CPU 0, consumer on CPU 1. Cross-process runs fork();
 * the child touches only memory prepared before the fork.
 */
#ifndef BENCH_PEERS_H
#define BENCH_PEERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Pins the calling thread to @cpu (ignored if the machine has fewer). */
void bench_pin(int cpu);

/** Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

/**
 * bench_boost_throughput - move @records 64-byte records through a Boost
 * spsc_queue, @batch at a time (push/pop of ranges when > 1).
 * @cross_process: 0 = threads, 1 = fork() with the queue in shared memory.
 * Return: seconds from the first push to the consumer's last pop, or < 0.
 */
double bench_boost_throughput(uint64_t records, int batch, int cross_process);

/** bench_socketpair_throughput - the same over write()/read() of @batch records per call. */
double bench_socketpair_throughput(uint64_t records, int batch, int cross_process);

/**
 * bench_boost_rtt / bench_socketpair_rtt - @rounds round trips of a record
 * out and a 32-byte response back, both sides busy-polling (Boost) or
 * blocking in read() (socketpair); round-trip times in ns go to @samples.
 */
int bench_boost_rtt(uint64_t rounds, int cross_process, uint64_t *samples);
int bench_socketpair_rtt(uint64_t rounds, int cross_process, uint64_t *samples);

#ifdef __cplusplus
}
#endif
#endif
