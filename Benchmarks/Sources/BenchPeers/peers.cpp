// SPDX-License-Identifier: MIT
// Peer queues for the side-by-side ring benchmark. See bench_peers.h.
#include "bench_peers.h"

#include <boost/lockfree/spsc_queue.hpp>

#include <atomic>
#include <cstring>
#include <new>
#include <thread>

#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace {

// The same 64 bytes as struct faultring_v2_fault.
struct alignas(8) Record {
	uint32_t type, sequence, device_id, flags, pasid, grpid, perm, reason;
	uint64_t addr, fetch_addr, cookie, timestamp_ns;
};
static_assert(sizeof(Record) == 64, "record must be 64 bytes");

struct Response {
	uint32_t argsz, version, flags, code;
	uint64_t cookie;
	uint32_t pasid, grpid;
};
static_assert(sizeof(Response) == 32, "response must be 32 bytes");

using Queue = boost::lockfree::spsc_queue<Record, boost::lockfree::capacity<4096>>;
using ResponseQueue = boost::lockfree::spsc_queue<Response, boost::lockfree::capacity<1024>>;

inline Record make_record(uint64_t n)
{
	Record r{};
	r.type = 1;
	r.sequence = (uint32_t)n;
	r.device_id = 1;
	r.addr = n << 12;
	r.timestamp_ns = n;
	return r;
}

// Shared between the two sides (threads or processes): the queues and a done flag.
struct Shared {
	Queue queue;
	ResponseQueue responses;
	std::atomic<uint64_t> done_ns{0};
	std::atomic<uint64_t> checksum{0};
};

Shared *map_shared()
{
	void *p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return nullptr;
	return new (p) Shared();
}

void unmap_shared(Shared *s)
{
	s->~Shared();
	munmap(s, sizeof(Shared));
}

// Runs consumer() on CPU 1 in a thread or a forked child, producer() here on CPU 0.
template <typename P, typename C> bool run_pair(int cross_process, P producer, C consumer)
{
	if (cross_process) {
		pid_t pid = fork();
		if (pid < 0)
			return false;
		if (pid == 0) {
			bench_pin(1);
			consumer();
			_exit(0);
		}
		bench_pin(0);
		producer();
		int status = 0;
		waitpid(pid, &status, 0);
		return WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	std::thread t([&] {
		bench_pin(1);
		consumer();
	});
	bench_pin(0);
	producer();
	t.join();
	return true;
}

bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = static_cast<const char *>(buf);
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool read_all(int fd, void *buf, size_t len)
{
	char *p = static_cast<char *>(buf);
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
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

extern "C" double bench_boost_throughput(uint64_t records, int batch, int cross_process)
{
	Shared *s = map_shared();
	if (!s)
		return -1;
	uint64_t start = 0;
	bool ok = run_pair(
		cross_process,
		[&] {
			Record buf[64];
			start = bench_now_ns();
			for (uint64_t n = 0; n < records;) {
				if (batch == 1) {
					Record r = make_record(n);
					while (!s->queue.push(r)) {
					}
					n++;
				} else {
					uint64_t count = records - n < (uint64_t)batch ? records - n : (uint64_t)batch;
					for (uint64_t i = 0; i < count; i++)
						buf[i] = make_record(n + i);
					size_t sent = 0;
					while (sent < count)
						sent += s->queue.push(buf + sent, count - sent);
					n += count;
				}
			}
			while (s->done_ns.load(std::memory_order_acquire) == 0) {
			}
		},
		[&] {
			Record buf[64];
			uint64_t sum = 0;
			for (uint64_t n = 0; n < records;) {
				if (batch == 1) {
					Record r;
					while (!s->queue.pop(r)) {
					}
					sum += r.addr;
					n++;
				} else {
					size_t got = s->queue.pop(buf, (size_t)batch);
					for (size_t i = 0; i < got; i++)
						sum += buf[i].addr;
					n += got;
				}
			}
			s->checksum.store(sum, std::memory_order_relaxed);
			s->done_ns.store(bench_now_ns(), std::memory_order_release);
		});
	double seconds = ok ? (double)(s->done_ns.load() - start) / 1e9 : -1;
	unmap_shared(s);
	return seconds;
}

extern "C" double bench_socketpair_throughput(uint64_t records, int batch, int cross_process)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -1;
	uint64_t start = 0, end = 0;
	bool ok = run_pair(
		cross_process,
		[&] {
			Record buf[64];
			start = bench_now_ns();
			for (uint64_t n = 0; n < records;) {
				uint64_t count = records - n < (uint64_t)batch ? records - n : (uint64_t)batch;
				for (uint64_t i = 0; i < count; i++)
					buf[i] = make_record(n + i);
				if (!write_all(sv[0], buf, count * sizeof(Record)))
					return;
				n += count;
			}
			char ack;
			read_all(sv[0], &ack, 1);
			end = bench_now_ns();
		},
		[&] {
			Record buf[64];
			uint64_t sum = 0;
			for (uint64_t n = 0; n < records;) {
				uint64_t count = records - n < (uint64_t)batch ? records - n : (uint64_t)batch;
				if (!read_all(sv[1], buf, count * sizeof(Record)))
					return;
				for (uint64_t i = 0; i < count; i++)
					sum += buf[i].addr;
				n += count;
			}
			char ack = (char)(sum & 1);
			write_all(sv[1], &ack, 1);
		});
	close(sv[0]);
	close(sv[1]);
	return ok ? (double)(end - start) / 1e9 : -1;
}

extern "C" int bench_boost_rtt(uint64_t rounds, int cross_process, uint64_t *samples)
{
	Shared *s = map_shared();
	if (!s)
		return -1;
	bool ok = run_pair(
		cross_process,
		[&] {
			for (uint64_t n = 0; n < rounds; n++) {
				uint64_t t0 = bench_now_ns();
				Record r = make_record(n);
				while (!s->queue.push(r)) {
				}
				Response resp;
				while (!s->responses.pop(resp)) {
				}
				samples[n] = bench_now_ns() - t0;
			}
		},
		[&] {
			for (uint64_t n = 0; n < rounds; n++) {
				Record r;
				while (!s->queue.pop(r)) {
				}
				Response resp{32, 2, 0, 0, r.addr, 0, 0};
				while (!s->responses.push(resp)) {
				}
			}
		});
	unmap_shared(s);
	return ok ? 0 : -1;
}

extern "C" int bench_socketpair_rtt(uint64_t rounds, int cross_process, uint64_t *samples)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -1;
	bool ok = run_pair(
		cross_process,
		[&] {
			for (uint64_t n = 0; n < rounds; n++) {
				uint64_t t0 = bench_now_ns();
				Record r = make_record(n);
				Response resp;
				if (!write_all(sv[0], &r, sizeof r) || !read_all(sv[0], &resp, sizeof resp))
					return;
				samples[n] = bench_now_ns() - t0;
			}
		},
		[&] {
			for (uint64_t n = 0; n < rounds; n++) {
				Record r;
				if (!read_all(sv[1], &r, sizeof r))
					return;
				Response resp{32, 2, 0, 0, r.addr, 0, 0};
				if (!write_all(sv[1], &resp, sizeof resp))
					return;
			}
		});
	close(sv[0]);
	close(sv[1]);
	return ok ? 0 : -1;
}
