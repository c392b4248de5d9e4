/* SPDX-License-Identifier: MIT */
/*
 * bench_peers.h - the peers faultring's ring is measured against, driven
 * with the same 64-byte records (built from a template, read whole), the
 * same batch sizes and core placement:
 *   - boost::lockfree::spsc_queue<record, capacity<4096>>, the record
 *     alignas(64) so none straddles two cache lines (libboost-dev);
 *   - DPDK rte_ring, SP/SC, 4096 elements of 64 bytes, set up without the
 *     EAL (rte_ring_get_memsize_elem + rte_ring_init on aligned memory),
 *     copying or zero-copy dequeue (libdpdk-dev, librte-ring23).
 * Producer on CPU 0, consumer on CPU 1, two threads of one process.
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
 * bench_pingpong_ns - one cache line bounced between CPU 0 and CPU 1
 * @rounds times. Return: mean ns per round trip, which labels the VM's
 * state before a measurement (about 130 ns fast, 550 ns slow here).
 */
double bench_pingpong_ns(uint64_t rounds);

/**
 * bench_boost_throughput - move @records records through the Boost queue,
 * @batch at a time (push/pop of one record, or of ranges).
 * Return: seconds from the first push to the consumer's last pop.
 */
double bench_boost_throughput(uint64_t records, int batch);

/**
 * bench_rte_ring_throughput - the same through rte_ring: enqueue/dequeue
 * of one element, or bursts; with @zero_copy, the consumer reads records
 * in place (rte_ring_dequeue_zc_burst_elem_start / _finish).
 * Return: seconds, or < 0 if the ring could not be set up.
 */
double bench_rte_ring_throughput(uint64_t records, int batch, int zero_copy);

/**
 * bench_boost_rtt / bench_rte_ring_rtt - @rounds round trips of a record
 * out and a 32-byte response back, both sides busy-polling; round-trip
 * times in ns go to @samples. Return: 0, or < 0 on set-up failure.
 */
int bench_boost_rtt(uint64_t rounds, uint64_t *samples);
int bench_rte_ring_rtt(uint64_t rounds, uint64_t *samples);

#ifdef __cplusplus
}
#endif
#endif
