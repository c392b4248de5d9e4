/* SPDX-License-Identifier: MIT */
/*
 * test_client.c - libfaultring-client against a live `faultring serve`
 * ($FAULTRING_BIN) and against a hostile fake server. TAP output; exit 1 on
 * any failure. Every wait has a timeout and alarm() bounds the whole run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_server.h"
#include "faultring_client.h"

static int failures, checks;
static const char *bin;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		checks++;                                                    \
		if (!(cond)) {                                               \
			failures++;                                          \
			printf("#   FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			printf(__VA_ARGS__);                                 \
			printf("\n");                                        \
		}                                                            \
	} while (0)

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static void pause_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&t, NULL);
}

/* ---- the service ------------------------------------------------------- */

/* `faultring serve` on @path with @extra arguments (NULL-terminated; NULL: none) after the defaults. */
static pid_t serve_start_with(const char *path, const char *const *extra)
{
	unlink(path);
	pid_t pid = fork();
	if (pid == 0) {
		const char *argv[32] = { "faultring", "serve", "--socket-path", path, "--devices", "4", "--rate", "2000",
					 "--log-level", "error" };
		int n = 10;
		for (; extra && *extra && n < 31; extra++)
			argv[n++] = *extra;
		argv[n] = NULL;
		execv(bin, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	return pid;
}

static pid_t serve_start(const char *path) { return serve_start_with(path, NULL); }

static int serve_stop(pid_t pid, int sig)
{
	int status = 0;
	kill(pid, sig);
	waitpid(pid, &status, 0);
	return status;
}

/* Connects once the service listens (up to 20 s: a debug build starts slowly). */
static int connect_retry(struct frc_client *c, const char *path)
{
	int err = -ETIMEDOUT;
	for (int i = 0; i < 400; i++) {
		if ((err = frc_connect(c, path, "c-client-tests")) == 0)
			return 0;
		pause_ms(50);
	}
	return err;
}

struct tally {
	unsigned long long records, groups, per_device[8];
};

/* Reads and answers SUCCESS until @want groups are answered or an error. */
static int consume(struct frc_queue *q, struct tally *t, unsigned long long want)
{
	const union frc_record *batch[32];
	while (t->groups < want) {
		int n = frc_wait(q, 5000);
		if (n < 0)
			return n;
		if ((n = frc_peek(q, batch, 32)) < 0)
			return n;
		for (int i = 0; i < n; i++) {
			const union frc_record *r = batch[i];
			t->records++;
			uint32_t type = q->abi == 2 ? r->v2.type : r->v1.type;
			uint32_t last = q->abi == 2 ? r->v2.flags & FAULTRING_V2_LAST_PAGE
						   : r->v1.prm.flags & FAULTRING_V1_PRQ_LAST_PAGE;
			if (type != FAULTRING_FAULT_PAGE_REQ || !last)
				continue;
			int err;
			while ((err = frc_respond(q, r, FAULTRING_RESP_SUCCESS)) == -EAGAIN)
				if ((err = frc_wait_response_space(q, 5000)) < 0)
					return err;
			if (err < 0)
				return err;
			t->groups++;
			t->per_device[q->abi == 2 ? r->v2.device_id & 7 : 0]++;
		}
		frc_release(q, (unsigned)n);
		int err = frc_commit(q);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Waits until the producer has read every response we published. */
static void settle(struct frc_queue *q)
{
	const struct faultring_producer_header *h = (const struct faultring_producer_header *)(const void *)q->producer;
	for (int i = 0; i < 500 && __atomic_load_n(&h->resp_cons.value, __ATOMIC_ACQUIRE) != q->resp_published; i++)
		pause_ms(10);
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static long long number(json_object *o, const char *key)
{
	json_object *v = member(o, key);
	return v ? json_object_get_int64(v) : -1;
}

/* The books: every answer from us, none twice, none wrong; the queue saw no bad slot. */
static void check_ledger(struct frc_client *c, struct frc_queue *q, const struct tally *t, const uint32_t *ids,
			 unsigned count, int v1_device)
{
	static char stats[65536 + 1];
	int len = frc_stats(c, 0, stats, sizeof stats);
	CHECK(len > 0, "STATS: %s", c->error);
	json_object *root = json_tokener_parse(stats);
	json_object *devices = member(root, "devices");
	CHECK(devices && json_object_is_type(devices, json_type_array), "STATS has no devices array");
	unsigned long long sum = 0;
	for (unsigned k = 0; k < count; k++) {
		json_object *d = NULL;
		for (size_t i = 0; devices && i < json_object_array_length(devices); i++)
			if (number(json_object_array_get_idx(devices, i), "id") == ids[k])
				d = json_object_array_get_idx(devices, i);
		CHECK(d != NULL, "device %u missing from STATS", ids[k]);
		long long mine = (long long)t->per_device[v1_device ? 0 : ids[k] & 7];
		long long consumer = number(member(d, "answersBySource"), "consumer");
		CHECK(consumer == mine, "device %u: the service counts %lld consumer answers, we sent %lld", ids[k],
		      consumer, mine);
		CHECK(number(d, "answeredTwiceOrUnknown") == 0 && number(d, "wrong") == 0, "device %u: twice %lld wrong %lld",
		      ids[k], number(d, "answeredTwiceOrUnknown"), number(d, "wrong"));
		CHECK(number(d, "issued") == number(d, "answered") + number(d, "outstanding"),
		      "device %u: issued %lld != answered %lld + outstanding %lld", ids[k], number(d, "issued"),
		      number(d, "answered"), number(d, "outstanding"));
		sum += (unsigned long long)(mine > 0 ? mine : 0);
	}
	CHECK(sum == t->groups, "per-device answers %llu, total %llu", sum, t->groups);
	const struct faultring_counters *k = frc_counters(q);
	CHECK(k->responses_valid == t->groups && k->match_completed == t->groups,
	      "queue counters: responses_valid %llu match_completed %llu, answered %llu",
	      (unsigned long long)k->responses_valid, (unsigned long long)k->match_completed, t->groups);
	uint64_t bad = k->resp_bad_argsz + k->resp_trailing_nonzero + k->resp_bad_version + k->resp_unknown_flags +
		       k->resp_reserved_nonzero + k->resp_bad_code + k->resp_out_of_range + k->bad_response_index +
		       k->bad_consumer_index + k->match_unknown + k->match_duplicate + k->match_mismatch +
		       k->match_foreign_device;
	CHECK(bad == 0, "queue counters: %llu validation or match failures", (unsigned long long)bad);
	CHECK(q->loss.sequence_gaps == 0, "%llu sequence gaps", (unsigned long long)q->loss.sequence_gaps);
	json_object_put(root);
}

static void test_consume(const char *path, uint32_t abi)
{
	uint32_t ids4[] = { 1, 2, 3, 4 }, id1[] = { 2 };
	const uint32_t *ids = abi == 2 ? ids4 : id1;
	unsigned count = abi == 2 ? 4 : 1;
	pid_t pid = serve_start(path);
	struct frc_client c;
	struct frc_queue q;
	frc_client_init(&c);
	frc_queue_init(&q);
	int err = connect_retry(&c, path);
	CHECK(err == 0, "connect: %s", c.error);
	err = frc_attach(&c, &q, abi, ids, count, 5000);
	CHECK(err == (int)count, "attach ABI %u: %d %s", abi, err, c.error);
	CHECK(q.abi == abi, "ABI in force %u", q.abi);
	struct tally t = { 0 };
	err = consume(&q, &t, 400);
	CHECK(err == 0, "consume: %d %s", err, q.error);
	settle(&q);
	CHECK(frc_detach(&c, NULL, 0) == 0, "detach: %s", c.error);
	check_ledger(&c, &q, &t, ids, count, abi == 1);
	CHECK(frc_bye(&c) == 0, "bye: %s", c.error);
	frc_queue_close(&q);
	frc_close(&c);
	serve_stop(pid, SIGTERM);
	printf("#   ABI %u: %llu records, %llu groups answered\n", abi, t.records, t.groups);
}

/* SIGTERM closes the queue (ESHUTDOWN); SIGKILL leaves only a hung-up socket (ECONNRESET). */
static void test_service_ends(const char *path, int sig, int expected)
{
	uint32_t ids[] = { 1, 2 };
	pid_t pid = serve_start(path);
	struct frc_client c;
	struct frc_queue q;
	frc_client_init(&c);
	frc_queue_init(&q);
	CHECK(connect_retry(&c, path) == 0, "connect: %s", c.error);
	CHECK(frc_attach(&c, &q, 2, ids, 2, 5000) == 2, "attach: %s", c.error);
	struct tally t = { 0 };
	CHECK(consume(&q, &t, 20) == 0, "consume: %s", q.error);
	kill(pid, sig);
	int err = consume(&q, &t, ~0ULL);
	CHECK(err == expected, "after signal %d: %d (%s), expected %d", sig, err, q.error, expected);
	int status = serve_stop(pid, sig);
	if (sig == SIGTERM)
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve exit status 0x%x", status);
	frc_queue_close(&q);
	frc_close(&c);
}

static void test_reconnect(const char *path)
{
	uint32_t ids[] = { 3 };
	pid_t pid = serve_start(path);
	struct frc_client c;
	struct frc_queue q;
	frc_client_init(&c);
	frc_queue_init(&q);
	CHECK(connect_retry(&c, path) == 0, "connect: %s", c.error);
	CHECK(frc_attach(&c, &q, 2, ids, 1, 5000) == 1, "attach: %s", c.error);
	struct tally t = { 0 };
	CHECK(consume(&q, &t, 20) == 0, "consume: %s", q.error);
	serve_stop(pid, SIGTERM);
	CHECK(consume(&q, &t, ~0ULL) == -ESHUTDOWN, "%s", q.error);
	pid = serve_start(path);
	int err = frc_reconnect(&c, &q, path, "c-client-tests", 2, ids, 1, 20000);
	CHECK(err == 1, "reconnect: %d %s", err, c.error);
	struct tally again = { 0 };
	CHECK(consume(&q, &again, 50) == 0, "consume after reconnect: %s", q.error);
	settle(&q);
	CHECK(frc_detach(&c, ids, 1) == 0, "detach: %s", c.error);
	check_ledger(&c, &q, &again, ids, 1, 0);
	frc_queue_close(&q);
	frc_close(&c);
	serve_stop(pid, SIGTERM);
}

static void test_hostile(void)
{
	static const int expected[FAKE_MODES] = {
		[FAKE_VALID_QUEUE] = -ETIMEDOUT,  [FAKE_THREE_FDS] = -EBADMSG,	   [FAKE_FIVE_FDS] = -EBADMSG,
		[FAKE_UNSEALED] = -EPERM,	  [FAKE_WRITABLE] = -EPERM,	   [FAKE_NOT_MEMFD] = -EBADF,
		[FAKE_STREAM_DOORBELL] = -EBADF,  [FAKE_TRUNCATED] = -EBADMSG,	   [FAKE_SIZE_MISMATCH] = -EBADMSG,
		[FAKE_BAD_MAGIC] = -EPROTO,	  [FAKE_RING_TOO_BIG] = -EPROTO,   [FAKE_WRONG_ID] = -EBADMSG,
		[FAKE_NO_REPLY] = -ETIMEDOUT,	  [FAKE_HELLO_SHORT] = -EBADMSG,
		[FAKE_ZERO_LENGTH] = -EBADMSG,	  [FAKE_STALE_REPLY] = -ETIMEDOUT, [FAKE_DIE_IN_NEGOTIATION] = -ECONNRESET,
	};
	for (int mode = 0; mode < FAKE_RUNNING; mode++) {
		int before = open_fds();
		pid_t pid;
		int fd = fake_server_start((enum fake_mode)mode, &pid);
		struct frc_client c;
		struct frc_queue q;
		frc_client_init(&c);
		frc_queue_init(&q);
		c.timeout_ms = 300;
		uint32_t id = 1;
		int err = frc_connect_fd(&c, fd, "hostile");
		/* A dying server must be seen at once, not after the negotiation timeout. */
		if (err == 0)
			err = frc_attach(&c, &q, 2, &id, 1, mode == FAKE_DIE_IN_NEGOTIATION ? -1 : 300);
		CHECK(err == expected[mode], "%s: %d (%s), expected %d", fake_mode_name((enum fake_mode)mode), err, c.error,
		      expected[mode]);
		CHECK(q.producer == NULL && q.fds[0] == -1, "%s: the queue kept something", fake_mode_name((enum fake_mode)mode));
		printf("#   %-36s -> %-9s %s\n", fake_mode_name((enum fake_mode)mode), strerror(-err), c.error);
		frc_close(&c);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		CHECK(open_fds() == before, "%s: %d descriptors open, %d before", fake_mode_name((enum fake_mode)mode),
		      open_fds(), before);
	}
}

/*
 * A producer that rewrites its header after the queue was validated cannot
 * move the rings; a full response ring is never overwritten; a service that
 * dies is seen by every wait, the response-space one included.
 */
static void test_running_fake(void)
{
	int before = open_fds();
	pid_t pid;
	int fd = fake_server_start(FAKE_RUNNING, &pid);
	struct frc_client c;
	struct frc_queue q;
	frc_client_init(&c);
	frc_queue_init(&q);
	uint32_t id = 1;
	CHECK(frc_connect_fd(&c, fd, "hostile") == 0, "connect: %s", c.error);
	CHECK(frc_attach(&c, &q, 2, &id, 1, 1000) == 1, "attach: %s", c.error);
	static char stats[64];
	CHECK(frc_stats(&c, 0, stats, sizeof stats) == 2, "stats: %s", c.error); /* the header is rewritten now */
	const union frc_record *r[4];
	int n = frc_peek(&q, r, 4);
	CHECK(n == 1 && r[0]->v2.cookie == 0xC0FFEE, "peek after the header moved: %d (%s)", n, q.error);
	for (int i = 0; i < 8; i++)
		CHECK(frc_respond(&q, r[0], FAULTRING_RESP_SUCCESS) == 0, "respond %d: %s", i, q.error);
	CHECK(frc_respond(&q, r[0], FAULTRING_RESP_SUCCESS) == -EAGAIN, "a full ring: %s", q.error);
	frc_release(&q, 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	int err = frc_wait_response_space(&q, -1);
	CHECK(err == -ECONNRESET, "response space after the service died: %d (%s)", err, q.error);
	err = frc_wait(&q, -1);
	CHECK(err == -ECONNRESET, "wait after the service died: %d (%s)", err, q.error);
	frc_queue_close(&q);
	frc_close(&c);
	CHECK(open_fds() == before, "%d descriptors open, %d before", open_fds(), before);
}

/* Responses that cannot be malformed: wrong ABI, wrong record, bad code are refused. */
static void test_builders(void)
{
	struct frc_queue q;
	frc_queue_init(&q);
	union frc_record r;
	memset(&r, 0, sizeof r);
	r.v2.type = FAULTRING_FAULT_PAGE_REQ;
	CHECK(frc_respond(&q, &r, 0) == -EBADF, "respond before negotiation");
	q.abi = 2;
	CHECK(frc_respond(&q, &r, 0) == -EINVAL, "respond to a record without LAST_PAGE: %s", q.error);
	CHECK(frc_respond_prgi(&q, 1, 0, 0, 0) == -EINVAL, "PRGI answer on ABI 2: %s", q.error);
	CHECK(frc_respond_cookie(&q, 1, 7) == -EINVAL, "code 7: %s", q.error);
	q.abi = 1;
	CHECK(frc_respond_cookie(&q, 1, 0) == -EINVAL, "cookie answer on ABI 1: %s", q.error);
	CHECK(frc_respond_prgi(&q, 512, 0, 0, 0) == -EINVAL, "PRGI 512: %s", q.error);
	CHECK(frc_respond_prgi(&q, 1, 1, 1u << 20, 0) == -EINVAL, "PASID 2^20: %s", q.error);
}

/* ---- the nested IOMMU ------------------------------------------------- */

/*
 * Guest RAM shared as a sealed memfd, a VT-d PASID bound on a held device
 * (then its DMA raises page requests through the guest's empty table),
 * invalidations and an MSI doorbell forwarded, the bind undone; and what
 * the service refuses, each with its errno: a bind before holding any
 * device, an unsealed memfd, a device not held, a malformed range.
 */
static void test_nested(const char *path)
{
	static const char *const dma[] = { "--dma-devices", "--dma-pasids", "1", "--dma-step-us", "500", NULL };
	pid_t pid = serve_start_with(path, dma);
	struct frc_client c;
	struct frc_queue q;
	frc_client_init(&c);
	frc_queue_init(&q);
	int fds_before = open_fds();
	CHECK(connect_retry(&c, path) == 0, "connect: %s", c.error);
	const uint64_t gpa = 1ull << 30, size = 1u << 20;
	/* The guest's PASID-table entry: present, nested, DID 1, first stage at gpa (an empty 4-level table). */
	const uint64_t entry[8] = { 1u | 3u << 6, 1, gpa };
	uint32_t held[] = { 1 }, other[] = { 2 };
	int err = frc_bind_vtd_pasid(&c, 1, entry, held, 1);
	CHECK(err == -EPERM, "bind holding no device: %d %s", err, c.error);
	CHECK(frc_attach(&c, &q, 2, held, 1, 5000) == 1, "attach: %s", c.error);

	int mem = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(mem >= 0 && ftruncate(mem, (off_t)size) == 0, "memfd: %s", strerror(errno));
	err = frc_add_guest_memory(&c, mem, gpa, size, 0);
	CHECK(err == -EBADF, "unsealed memfd: %d %s", err, c.error);
	CHECK(fcntl(mem, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "seal: %s", strerror(errno));
	err = frc_add_guest_memory(&c, mem, gpa, size, 0);
	CHECK(err == 0, "add guest memory: %d %s", err, c.error);
	err = frc_add_guest_memory(&c, mem, gpa + 4096, 4096, 0);
	CHECK(err == -EEXIST, "overlapping region: %d %s", err, c.error);

	err = frc_bind_vtd_pasid(&c, 1, entry, other, 1);
	CHECK(err == -EPERM, "bind on a device not held: %d %s", err, c.error);
	err = frc_bind_vtd_pasid(&c, 1, entry, held, 1);
	CHECK(err == 0, "bind: %d %s", err, c.error);

	/* The device's stream on PASID 1 now runs and misses in the empty table: page requests. */
	unsigned long long requests = 0;
	const union frc_record *batch[32];
	for (int round = 0; round < 100 && requests < 3; round++) {
		int n = frc_wait(&q, 100);
		if (n <= 0 || (n = frc_peek(&q, batch, 32)) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			const struct faultring_v2_fault *r = &batch[i]->v2;
			if (r->type != FAULTRING_FAULT_PAGE_REQ || !(r->flags & FAULTRING_V2_LAST_PAGE))
				continue;
			CHECK(r->device_id == 1 && r->pasid == 1, "page request from device %u PASID %u", r->device_id, r->pasid);
			requests++;
			while (frc_respond(&q, batch[i], FAULTRING_RESP_INVALID) == -EAGAIN)
				frc_wait_response_space(&q, 1000);
		}
		frc_release(&q, (unsigned)n);
		frc_commit(&q);
	}
	CHECK(requests >= 3, "page requests through the bound table: %llu", requests);

	err = frc_invalidate(&c, FAULTRING_INV_PASID, FAULTRING_INV_FLAG_PASID, 0, 1, 0, 0);
	CHECK(err == 0, "invalidate PASID: %d %s", err, c.error);
	err = frc_invalidate(&c, FAULTRING_INV_RANGE, FAULTRING_INV_FLAG_PASID | FAULTRING_INV_FLAG_RANGE | FAULTRING_INV_FLAG_LEAF,
			     0, 1, 0x10000, 0x1000);
	CHECK(err == 0, "invalidate range: %d %s", err, c.error);
	err = frc_invalidate(&c, FAULTRING_INV_RANGE, FAULTRING_INV_FLAG_PASID | FAULTRING_INV_FLAG_RANGE, 0, 1, 0x10000, 3000);
	CHECK(err == -EINVAL, "a range of 3000 bytes: %d %s", err, c.error);
	err = frc_invalidate(&c, FAULTRING_INV_DEVICE_TLB, 0, 2, 0, 0, 0);
	CHECK(err == -EPERM, "device-TLB of a device not held: %d %s", err, c.error);

	err = frc_bind_msi(&c, 0xFEE00000u, gpa + 0x80000, 4096);
	CHECK(err == 0, "bind MSI: %d %s", err, c.error);
	err = frc_bind_msi(&c, 0xFEE00000u, gpa + 0x80000, 3000);
	CHECK(err == -EINVAL, "MSI size 3000: %d %s", err, c.error);
	CHECK(frc_unbind_msi(&c, 0xFEE00000u) == 0, "unbind MSI: %s", c.error);

	CHECK(frc_unbind(&c, FAULTRING_BIND_VTD_PASID, 1, held, 1) == 0, "unbind: %s", c.error);
	CHECK(frc_unbind(&c, FAULTRING_BIND_VTD_PASID, 1, held, 1) == 0, "unbind again (cannot fail): %s", c.error);

	/* The service's books of this VM. */
	char stats[65536];
	CHECK(frc_stats(&c, 0, stats, sizeof stats) > 0, "stats: %s", c.error);
	json_object *root = json_tokener_parse(stats), *nested = NULL;
	json_object *clients = member(root, "clients");
	for (size_t i = 0; clients && i < json_object_array_length(clients); i++) {
		json_object *cl = json_object_array_get_idx(clients, i);
		if (number(cl, "pid") == getpid())
			nested = member(cl, "nested");
	}
	CHECK(nested != NULL, "STATS has this client's nested IOMMU");
	/* The refused binds never reached the domain (the rights are checked first): one bind, one unbind. */
	CHECK(number(nested, "binds") == 1 && number(nested, "unbinds") == 1, "binds %lld unbinds %lld",
	      number(nested, "binds"), number(nested, "unbinds"));
	json_object *inv = member(nested, "invalidations");
	CHECK(number(inv, "pasid") == 1 && number(inv, "range") == 1, "invalidations forwarded: %s",
	      inv ? json_object_to_json_string(inv) : "none");
	json_object_put(root);

	CHECK(frc_bye(&c) == 0, "bye: %s", c.error);
	frc_queue_close(&q);
	frc_close(&c);
	close(mem);
	CHECK(open_fds() == fds_before, "descriptors: %d before, %d after", fds_before, open_fds());
	serve_stop(pid, SIGTERM);
	printf("#   nested: %llu page requests through the bound table\n", requests);
}

int main(void)
{
	alarm(300);
	setvbuf(stdout, NULL, _IOLBF, 0); /* a crash keeps the lines before it */
	bin = getenv("FAULTRING_BIN");
	if (!bin || access(bin, X_OK) != 0) {
		printf("Bail out! FAULTRING_BIN (%s) is not an executable faultring\n", bin ? bin : "unset");
		return 1;
	}
	char path[64];
	snprintf(path, sizeof path, "/tmp/frc-test-%d.sock", (int)getpid());
	static const char *const tests[] = {
		"response builders refuse what the producer would reject",
		"hostile server input is refused without a leak",
		"a rewritten header cannot move the rings; a dead service ends every wait",
		"ABI 2: consume, answer everything, ledgers balance",
		"ABI 1: consume, answer everything, ledgers balance",
		"SIGTERM of the service is seen as a closed queue",
		"SIGKILL of the service is seen as the service gone",
		"reconnect after a restart",
		"nested IOMMU: guest memory, bind, invalidate, MSI, unbind, and refusals",
	};
	int n = (int)(sizeof tests / sizeof tests[0]);
	printf("1..%d\n", n);
	for (int i = 0; i < n; i++) {
		int before = failures;
		switch (i) {
		case 0: test_builders(); break;
		case 1: test_hostile(); break;
		case 2: test_running_fake(); break;
		case 3: test_consume(path, 2); break;
		case 4: test_consume(path, 1); break;
		case 5: test_service_ends(path, SIGTERM, -ESHUTDOWN); break;
		case 6: test_service_ends(path, SIGKILL, -ECONNRESET); break;
		case 7: test_reconnect(path); break;
		default: test_nested(path); break;
		}
		printf("%s %d - %s\n", failures == before ? "ok" : "not ok", i + 1, tests[i]);
	}
	unlink(path);
	printf("# %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
