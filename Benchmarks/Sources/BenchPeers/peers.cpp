// SPDX-License-Identifier: MIT
// Peer queues for the side-by-side ring benchmark. See bench_peers.h.
#include "bench_peers.h"

#include <boost/lockfree/spsc_queue.hpp>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include <sched.h>
#include <time.h>

namespace {

// The same 64 bytes as struct faultring_v2_fault, on its own cache line (a
// record straddling two lines would cost every peer a second line per record).
struct alignas(64) Record {
	uint32_t type, sequence, device_id, flags, pasid, grpid, perm, reason;
	uint64_t addr, fetch_addr, cookie, timestamp_ns;
};
static_assert(sizeof(Record) == 64 && alignof(Record) == 64, "one record, one cache line");

struct Response {
	uint32_t argsz, version, flags, code;
	uint64_t cookie;
	uint32_t pasid, grpid;
};
static_assert(sizeof(Response) == 32, "response must be 32 bytes");

using BoostQueue = boost::lockfree::spsc_queue<Record, boost::lockfree::capacity<4096>>;
using BoostResponses = boost::lockfree::spsc_queue<Response, boost::lockfree::capacity<1024>>;

// Record n, built the way faultring's encoded path builds it: a template
// copied whole, then the fields that vary patched.
inline void make_record(Record *r, uint64_t n)
{
	static const Record tmpl = {1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	*r = tmpl;
	r->sequence = (uint32_t)n;
	r->addr = n << 12;
	r->timestamp_ns = n;
}

// Reads all 64 bytes, as faultring's consumer does.
inline uint64_t touch(const void *p)
{
	const uint64_t *w = static_cast<const uint64_t *>(p);
	uint64_t s = 0;
	for (int i = 0; i < 8; i++)
		s += w[i];
	return s;
}

// Runs consumer() on CPU 1 in a thread and producer() here on CPU 0.
template <typename P, typename C> void run_pair(P producer, C consumer)
{
	std::thread t([&] {
		bench_pin(1);
		consumer();
	});
	bench_pin(0);
	producer();
	t.join();
}

struct Done {
	alignas(64) std::atomic<uint64_t> ns{0};
	alignas(64) std::atomic<uint64_t> checksum{0};
};

// An SP/SC rte_ring of 64-byte elements on 64-byte-aligned memory, set up
// without the EAL: rte_ring_get_memsize_elem + rte_ring_init. Without
// RING_F_EXACT_SZ a ring of 4096 holds 4095, one less than the others.
rte_ring *make_rte_ring(unsigned count)
{
	ssize_t size = rte_ring_get_memsize_elem(64, count);
	if (size < 0)
		return nullptr;
	void *memory = aligned_alloc(64, ((size_t)size + 63) & ~(size_t)63);
	if (!memory)
		return nullptr;
	rte_ring *r = static_cast<rte_ring *>(memory);
	if (rte_ring_init(r, "bench", count, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
		free(memory);
		return nullptr;
	}
	return r;
}

} // namespace

extern "C" void bench_pin(int cpu)
{
	if (cpu >= (int)std::thread::hardware_concurrency())
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

extern "C" uint64_t bench_now_ns(void)
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

extern "C" double bench_pingpong_ns(uint64_t rounds)
{
	struct alignas(64) Line {
		std::atomic<uint64_t> v{0};
	};
	Line line;
	uint64_t start = 0, end = 0;
	run_pair(
		[&] {
			start = bench_now_ns();
			for (uint64_t i = 0; i < rounds; i++) {
				line.v.store(2 * i + 1, std::memory_order_release);
				while (line.v.load(std::memory_order_acquire) != 2 * i + 2) {
				}
			}
			end = bench_now_ns();
		},
		[&] {
			for (uint64_t i = 0; i < rounds; i++) {
				while (line.v.load(std::memory_order_acquire) != 2 * i + 1) {
				}
				line.v.store(2 * i + 2, std::memory_order_release);
			}
		});
	return (double)(end - start) / (double)rounds;
}

extern "C" double bench_boost_throughput(uint64_t records, int batch)
{
	BoostQueue *q = new BoostQueue();
	Done done;
	uint64_t start = 0;
	run_pair(
		[&] {
			Record buf[64];
			start = bench_now_ns();
			for (uint64_t n = 0; n < records;) {
				if (batch == 1) {
					make_record(buf, n);
					while (!q->push(buf[0])) {
					}
					n++;
				} else {
					uint64_t count = records - n < (uint64_t)batch ? records - n : (uint64_t)batch;
					for (uint64_t i = 0; i < count; i++)
						make_record(buf + i, n + i);
					size_t sent = 0;
					while (sent < count)
						sent += q->push(buf + sent, count - sent);
					n += count;
				}
			}
			while (done.ns.load(std::memory_order_acquire) == 0) {
			}
		},
		[&] {
			Record buf[64];
			uint64_t sum = 0;
			for (uint64_t n = 0; n < records;) {
				if (batch == 1) {
					while (!q->pop(buf[0])) {
					}
					sum += touch(buf);
					n++;
				} else {
					size_t got = q->pop(buf, (size_t)batch);
					for (size_t i = 0; i < got; i++)
						sum += touch(buf + i);
					n += got;
				}
			}
			done.checksum.store(sum, std::memory_order_relaxed);
			done.ns.store(bench_now_ns(), std::memory_order_release);
		});
	double seconds = (double)(done.ns.load() - start) / 1e9;
	delete q;
	return seconds;
}

extern "C" double bench_rte_ring_throughput(uint64_t records, int batch, int zero_copy)
{
	rte_ring *r = make_rte_ring(4096);
	if (!r)
		return -1;
	Done done;
	uint64_t start = 0;
	run_pair(
		[&] {
			Record buf[64];
			start = bench_now_ns();
			for (uint64_t n = 0; n < records;) {
				uint64_t count = records - n < (uint64_t)batch ? records - n : (uint64_t)batch;
				for (uint64_t i = 0; i < count; i++)
					make_record(buf + i, n + i);
				if (count == 1) {
					while (rte_ring_sp_enqueue_elem(r, buf, 64) != 0) {
					}
				} else {
					unsigned sent = 0;
					while (sent < count)
						sent += rte_ring_sp_enqueue_burst_elem(r, buf + sent, 64, (unsigned)(count - sent), nullptr);
				}
				n += count;
			}
			while (done.ns.load(std::memory_order_acquire) == 0) {
			}
		},
		[&] {
			Record buf[64];
			uint64_t sum = 0;
			for (uint64_t n = 0; n < records;) {
				if (zero_copy) {
					rte_ring_zc_data zcd;
					unsigned got = rte_ring_dequeue_zc_burst_elem_start(r, 64, (unsigned)batch, &zcd, nullptr);
					if (got == 0)
						continue;
					const char *p = static_cast<const char *>(zcd.ptr1);
					for (unsigned i = 0; i < zcd.n1; i++)
						sum += touch(p + 64 * i);
					p = static_cast<const char *>(zcd.ptr2);
					for (unsigned i = zcd.n1; i < got; i++)
						sum += touch(p + 64 * (i - zcd.n1));
					rte_ring_dequeue_zc_elem_finish(r, got);
					n += got;
				} else if (batch == 1) {
					if (rte_ring_sc_dequeue_elem(r, buf, 64) != 0)
						continue;
					sum += touch(buf);
					n++;
				} else {
					unsigned got = rte_ring_sc_dequeue_burst_elem(r, buf, 64, (unsigned)batch, nullptr);
					for (unsigned i = 0; i < got; i++)
						sum += touch(buf + i);
					n += got;
				}
			}
			done.checksum.store(sum, std::memory_order_relaxed);
			done.ns.store(bench_now_ns(), std::memory_order_release);
		});
	double seconds = (double)(done.ns.load() - start) / 1e9;
	free(r);
	return seconds;
}

extern "C" int bench_boost_rtt(uint64_t rounds, uint64_t *samples)
{
	BoostQueue *q = new BoostQueue();
	BoostResponses *responses = new BoostResponses();
	run_pair(
		[&] {
			Record r;
			for (uint64_t n = 0; n < rounds; n++) {
				uint64_t t0 = bench_now_ns();
				make_record(&r, n);
				while (!q->push(r)) {
				}
				Response resp;
				while (!responses->pop(resp)) {
				}
				samples[n] = bench_now_ns() - t0;
			}
		},
		[&] {
			Record r;
			for (uint64_t n = 0; n < rounds; n++) {
				while (!q->pop(r)) {
				}
				Response resp{32, 2, 0, 0, r.addr, 0, 0};
				while (!responses->push(resp)) {
				}
			}
		});
	delete q;
	delete responses;
	return 0;
}

extern "C" int bench_rte_ring_rtt(uint64_t rounds, uint64_t *samples)
{
	rte_ring *q = make_rte_ring(4096);
	rte_ring *responses = make_rte_ring(1024);
	if (!q || !responses)
		return -1;
	run_pair(
		[&] {
			Record r;
			for (uint64_t n = 0; n < rounds; n++) {
				uint64_t t0 = bench_now_ns();
				make_record(&r, n);
				while (rte_ring_sp_enqueue_elem(q, &r, 64) != 0) {
				}
				Response resp;
				while (rte_ring_sc_dequeue_elem(responses, &resp, 32) != 0) {
				}
				samples[n] = bench_now_ns() - t0;
			}
		},
		[&] {
			Record r;
			for (uint64_t n = 0; n < rounds; n++) {
				while (rte_ring_sc_dequeue_elem(q, &r, 64) != 0) {
				}
				Response resp{32, 2, 0, 0, r.addr, 0, 0};
				while (rte_ring_sp_enqueue_elem(responses, &resp, 32) != 0) {
				}
			}
		});
	free(q);
	free(responses);
	return 0;
}
