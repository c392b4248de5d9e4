/* SPDX-License-Identifier: MIT */
/*
 * frc_control.c - the control connection: one request, one reply with the
 * same id (Docs/PROTOCOL.md), descriptors by SCM_RIGHTS.
 *
 * The service is trusted with the queue, not with the client's memory: every
 * reply is checked (packet length against the header's size, REPLY flag, id
 * and command, payload length, descriptor count) before a byte of it is used,
 * and every descriptor that arrives is closed on every path that does not
 * hand it to a queue. A reply that does not come within timeout_ms fails the
 * request with ETIMEDOUT, so a hung service cannot hang the VMM.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "faultring_client.h"
#include "faultring_protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frc_internal.h"

void frc_client_init(struct frc_client *c)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->next_id = 1;
	c->timeout_ms = FRC_DEFAULT_TIMEOUT_MS;
}

void frc_close(struct frc_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buffer);
	int timeout = c->timeout_ms;
	char error[FRC_ERROR_MAX];
	memcpy(error, c->error, sizeof error);
	frc_client_init(c);
	c->timeout_ms = timeout;
	memcpy(c->error, error, sizeof error);
}

static void close_all(const int *fds, int count)
{
	for (int i = 0; i < count; i++)
		close(fds[i]);
}

/* Sends one request; @fd >= 0 goes with it by SCM_RIGHTS (the caller keeps its own). */
static int send_request(struct frc_client *c, uint16_t command, uint32_t flags, const void *payload, size_t len,
			int fd, uint16_t *id)
{
	if (c->fd < 0)
		return frc_fail(c->error, ENOTCONN, "not connected");
	struct faultring_msg_header h;
	memset(&h, 0, sizeof h);
	if (c->next_id == 0) /* id 0 is the service's own, for unsolicited errors */
		c->next_id = 1;
	h.id = c->next_id++;
	h.command = command;
	h.size = (uint32_t)(sizeof h + len);
	h.flags = flags;
	struct iovec iov[2] = { { &h, sizeof h }, { (void *)(uintptr_t)payload, len } };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = iov;
	m.msg_iovlen = len ? 2 : 1;
	union {
		struct cmsghdr align;
		char bytes[CMSG_SPACE(sizeof(int))];
	} control;
	if (fd >= 0) {
		memset(&control, 0, sizeof control);
		m.msg_control = control.bytes;
		m.msg_controllen = sizeof control.bytes;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	/* MSG_DONTWAIT: a service that stopped reading fails the request, it does not hang us. */
	if (sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return frc_fail(c->error, errno == EPIPE ? ECONNRESET : errno, "sending command %u: %s", command,
				strerror(errno));
	*id = h.id;
	return 0;
}

/* Keeps printable ASCII of the service's reason; anything else becomes '?'. */
static void copy_reason(char *error, const uint8_t *text, size_t len)
{
	size_t k = len < FRC_ERROR_MAX - 1 ? len : FRC_ERROR_MAX - 1;
	for (size_t i = 0; i < k; i++)
		error[i] = text[i] >= 0x20 && text[i] < 0x7f ? (char)text[i] : '?';
	error[k] = 0;
}

/*
 * Receives the reply to request @id. On success the payload is in c->buffer
 * after the header, *payload_len is its length, and the descriptors that came
 * with it (none, or exactly @want_fds) are in @fds.
 *
 * A reply to an earlier request (one that timed out, or whose wait a signal
 * interrupted) arrives first and is discarded, descriptors closed, so one late
 * reply cannot shift every later request by one. An error reply is taken as
 * ours only if it carries our id, or id 0 (the service's unsolicited refusal).
 */
static int receive_reply(struct frc_client *c, uint16_t id, uint16_t command, size_t *payload_len, int *fds,
			 int want_fds, int *got_fds)
{
	int timeout = c->timeout_ms ? c->timeout_ms : FRC_DEFAULT_TIMEOUT_MS;
	int64_t deadline = timeout < 0 ? -1 : frc_now_ms() + timeout;
	*got_fds = 0;
	for (;;) {
		struct pollfd pfd = { c->fd, POLLIN | POLLRDHUP, 0 };
		int left = frc_remaining_ms(deadline);
		int n = poll(&pfd, 1, left < 0 || left > 1000 ? 1000 : left); /* re-armed: waits past an hour work */
		if (n < 0 && errno != EINTR)
			return frc_fail(c->error, errno, "command %u: poll: %s", command, strerror(errno));
		if (n <= 0) {
			if (frc_remaining_ms(deadline) == 0)
				return frc_fail(c->error, ETIMEDOUT, "command %u: no reply within %d ms", command, timeout);
			continue;
		}
		union {
			struct cmsghdr align;
			/* Room for twice the descriptors a reply may carry, and for
			 * SCM_CREDENTIALS on a socket with SO_PASSCRED. */
			char buf[CMSG_SPACE(sizeof(int) * FAULTRING_MSG_FDS_MAX * 2) + CMSG_SPACE(64)];
		} control;
		struct iovec iov = { c->buffer, FAULTRING_MSG_MAX };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = control.buf;
		m.msg_controllen = sizeof control.buf;
		ssize_t got = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0)
			return frc_fail(c->error, errno, "command %u: recvmsg: %s", command, strerror(errno));
		/* Collect every descriptor first, so each error path below can close them. */
		int received[FAULTRING_MSG_FDS_MAX * 2];
		int count = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && count < (int)(sizeof received / sizeof received[0]); i++)
				memcpy(&received[count++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
		}
		int err = 0;
		struct faultring_msg_header h;
		memset(&h, 0, sizeof h);
		if ((size_t)got >= sizeof h)
			memcpy(&h, c->buffer, sizeof h);
		size_t len = (size_t)got >= sizeof h ? (size_t)got - sizeof h : 0;
		int ours = h.id == id || (h.id == 0 && (h.flags & FAULTRING_MSG_ERROR));
		if (m.msg_flags & MSG_CTRUNC)
			err = frc_fail(c->error, EBADMSG, "command %u: reply carried more descriptors than any reply may",
				       command);
		else if (m.msg_flags & MSG_TRUNC)
			err = frc_fail(c->error, EBADMSG, "command %u: reply longer than %u bytes", command, FAULTRING_MSG_MAX);
		else if (got == 0 && (pfd.revents & (POLLHUP | POLLRDHUP)))
			err = frc_fail(c->error, ECONNRESET, "command %u: the service closed the connection", command);
		else if ((size_t)got < sizeof h)
			err = frc_fail(c->error, EBADMSG, "command %u: reply of %zd bytes, shorter than a header", command, got);
		else if (h.size != (uint32_t)got)
			err = frc_fail(c->error, EBADMSG, "command %u: header size %u, packet %zd bytes", command, h.size, got);
		else if (!ours && (h.flags & FAULTRING_MSG_REPLY) && (uint16_t)(id - h.id) < 0x8000) {
			close_all(received, count); /* the late reply to an earlier request */
			continue;
		} else if (ours && (h.flags & FAULTRING_MSG_ERROR) && (h.id == 0 || h.command == command)) {
			copy_reason(c->error, c->buffer + sizeof h, len);
			close_all(received, count);
			return -(h.error > 0 && h.error < 4096 ? (int)h.error : EPROTO);
		} else if (!ours || !(h.flags & FAULTRING_MSG_REPLY) || (h.flags & FAULTRING_MSG_ERROR) || h.command != command)
			err = frc_fail(c->error, EBADMSG, "command %u id %u: got flags 0x%x id %u command %u", command, id,
				       h.flags, h.id, h.command);
		else if (count != 0 && count != want_fds)
			err = frc_fail(c->error, EBADMSG, "command %u: reply carried %d descriptors, expected %d", command,
				       count, want_fds);
		if (err) {
			close_all(received, count);
			return err;
		}
		memcpy(fds, received, sizeof(int) * (size_t)count);
		*got_fds = count;
		*payload_len = len;
		return 0;
	}
}

/* One request (with @fd if >= 0), one reply with no descriptors. */
static int transact(struct frc_client *c, uint16_t command, uint32_t flags, const void *payload, size_t len, int fd,
		    size_t *reply_len)
{
	uint16_t id;
	int fds[FAULTRING_MSG_FDS_MAX], got;
	int err = send_request(c, command, flags, payload, len, fd, &id);
	if (err)
		return err;
	return receive_reply(c, id, command, reply_len, fds, 0, &got);
}

/* A top-level unsigned integer member of the HELLO reply; 0 if absent. */
static uint32_t json_u32(const char *json, const char *key)
{
	char quoted[64];
	snprintf(quoted, sizeof quoted, "\"%s\"", key);
	const char *p = strstr(json, quoted);
	if (!p)
		return 0;
	p += strlen(quoted);
	while (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	unsigned long long v = 0;
	while (*p >= '0' && *p <= '9' && v <= UINT32_MAX)
		v = v * 10 + (unsigned long long)(*p++ - '0');
	return v > UINT32_MAX ? 0 : (uint32_t)v;
}

int frc_connect_fd(struct frc_client *c, int fd, const char *name)
{
	if (c->buffer) {
		close(fd);
		return frc_fail(c->error, EISCONN, "connect: the client is already connected (frc_close it first)");
	}
	int timeout = c->timeout_ms;
	frc_client_init(c);
	c->timeout_ms = timeout;
	c->fd = fd;
	c->buffer = (uint8_t *)malloc(FAULTRING_MSG_MAX + 1);
	if (!c->buffer) {
		frc_close(c);
		return frc_fail(c->error, ENOMEM, "allocating the %u-byte message buffer", FAULTRING_MSG_MAX);
	}
	/* The name goes into JSON: keep printable ASCII without quote or backslash. */
	char safe[64];
	size_t k = 0;
	for (const char *s = name ? name : "libfaultring-client"; *s && k < sizeof safe - 1; s++)
		safe[k++] = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\') ? *s : '?';
	safe[k] = 0;
	char hello[128];
	int len = snprintf(hello, sizeof hello, "{\"protocolVersion\":%u,\"client\":\"%s\"}", FAULTRING_PROTOCOL_VERSION,
			   safe);
	size_t reply_len;
	int err = transact(c, FAULTRING_CMD_HELLO, 0, hello, (size_t)len, -1, &reply_len);
	if (err) {
		frc_close(c);
		return err;
	}
	char *json = (char *)c->buffer + sizeof(struct faultring_msg_header);
	json[reply_len] = 0; /* the buffer has one byte past FAULTRING_MSG_MAX */
	c->protocol_version = json_u32(json, "protocolVersion");
	c->entry_count = json_u32(json, "entryCount");
	c->response_count = json_u32(json, "responseCount");
	c->max_devices_per_attach = json_u32(json, "maxDevicesPerAttach");
	snprintf(c->caps, sizeof c->caps, "%s", json);
	if (c->protocol_version != FAULTRING_PROTOCOL_VERSION) {
		frc_close(c);
		return frc_fail(c->error, EPROTONOSUPPORT, "HELLO reply: protocol version %u, this library speaks %u",
				c->protocol_version, FAULTRING_PROTOCOL_VERSION);
	}
	return 0;
}

int frc_connect(struct frc_client *c, const char *path, const char *name)
{
	struct sockaddr_un addr;
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof addr.sun_path)
		return frc_fail(c->error, ENAMETOOLONG, "socket path of %zu bytes; at most %zu", strlen(path),
				sizeof addr.sun_path - 1);
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (c->buffer)
		return frc_fail(c->error, EISCONN, "connect: the client is already connected (frc_close it first)");
	/*
	 * Non-blocking: a service that stopped accepting (its backlog full) makes
	 * connect fail with EAGAIN at once instead of blocking the VMM; every
	 * later call on the socket polls with a timeout and uses MSG_DONTWAIT.
	 */
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return frc_fail(c->error, errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int err = errno;
		close(fd);
		return frc_fail(c->error, err, "connect %s: %s", path, strerror(err));
	}
	return frc_connect_fd(c, fd, name);
}

static int check_ids(struct frc_client *c, const char *what, const uint32_t *ids, unsigned count, unsigned min)
{
	if (count < min || count > FRC_MAX_DEVICES)
		return frc_fail(c->error, EINVAL, "%s: %u devices; 1..%u per message", what, count, FRC_MAX_DEVICES);
	if (count && !ids)
		return frc_fail(c->error, EINVAL, "%s: no device ids", what);
	return 0;
}

int frc_attach(struct frc_client *c, struct frc_queue *q, uint32_t abi, const uint32_t *ids, unsigned count,
	       int negotiate_timeout_ms)
{
	int err = check_ids(c, "ATTACH", ids, count, 1);
	if (err)
		return err;
	uint32_t payload[2 + FRC_MAX_DEVICES];
	payload[0] = abi;
	payload[1] = count;
	memcpy(payload + 2, ids, sizeof(uint32_t) * count);
	uint16_t id;
	if ((err = send_request(c, FAULTRING_CMD_ATTACH, 0, payload, sizeof(uint32_t) * (2 + count), -1, &id)))
		return err;
	int fds[FAULTRING_MSG_FDS_MAX], got;
	size_t len;
	if ((err = receive_reply(c, id, FAULTRING_CMD_ATTACH, &len, fds, 4, &got)))
		return err;
	struct faultring_msg_attach_reply r;
	if (len != sizeof r) {
		close_all(fds, got);
		return frc_fail(c->error, EBADMSG, "ATTACH reply: payload of %zu bytes, expected %zu", len, sizeof r);
	}
	memcpy(&r, c->buffer + sizeof(struct faultring_msg_header), sizeof r);
	int have_queue = q->producer != NULL;
	if (r.queue_created != (uint32_t)(got == 4) || (got == 4) == have_queue) {
		close_all(fds, got);
		return frc_fail(c->error, EBADMSG, "ATTACH reply: queue_created %u with %d descriptors, and the client %s a queue",
				r.queue_created, got, have_queue ? "already has" : "has no");
	}
	if (r.attached == 0 || r.attached > FRC_MAX_DEVICES * 1024) {
		close_all(fds, got);
		return frc_fail(c->error, EBADMSG, "ATTACH reply: %u devices attached after a successful ATTACH", r.attached);
	}
	if (got == 4) {
		if ((err = frc_queue_map(q, fds)) == 0) {
			/* Watched from now on, so a service dying during negotiation is seen. */
			q->control_fd = c->fd;
			if (q->entry_count != r.entry_count || q->response_count != r.response_count)
				err = frc_fail(q->error, EBADMSG, "ATTACH reply: %u entries / %u responses, the queue maps %u / %u",
					       r.entry_count, r.response_count, q->entry_count, q->response_count);
			else
				err = frc_queue_negotiate(q, abi, negotiate_timeout_ms);
		}
		if (err) {
			memcpy(c->error, q->error, sizeof c->error);
			frc_queue_close(q);
			return err;
		}
	}
	return (int)r.attached;
}

int frc_detach(struct frc_client *c, const uint32_t *ids, unsigned count)
{
	int err = check_ids(c, "DETACH", ids, count, 0);
	if (err)
		return err;
	uint32_t payload[1 + FRC_MAX_DEVICES];
	payload[0] = count;
	if (count)
		memcpy(payload + 1, ids, sizeof(uint32_t) * count);
	size_t len;
	return transact(c, FAULTRING_CMD_DETACH, 0, payload, sizeof(uint32_t) * (1 + count), -1, &len);
}

int frc_stats(struct frc_client *c, int prometheus, char *buf, size_t size)
{
	size_t len;
	int err = transact(c, FAULTRING_CMD_STATS, prometheus ? FAULTRING_MSG_TEXT : 0, NULL, 0, -1, &len);
	if (err)
		return err;
	if (len + 1 > size)
		return frc_fail(c->error, ENOBUFS, "STATS reply of %zu bytes does not fit %zu", len, size);
	memcpy(buf, c->buffer + sizeof(struct faultring_msg_header), len);
	buf[len] = 0;
	return (int)len;
}

int frc_bye(struct frc_client *c)
{
	size_t len;
	return transact(c, FAULTRING_CMD_BYE, 0, NULL, 0, -1, &len);
}

int frc_reconnect(struct frc_client *c, struct frc_queue *q, const char *path, const char *name, uint32_t abi,
		  const uint32_t *ids, unsigned count, int timeout_ms)
{
	frc_queue_close(q);
	frc_close(c);
	int64_t deadline = timeout_ms < 0 ? -1 : frc_now_ms() + timeout_ms;
	for (;;) {
		int err = frc_connect(c, path, name);
		/* A refused or missing socket means the service is not back yet; retry. */
		/*
		 * Retried: no socket yet (ENOENT), nobody listening or a full backlog
		 * (ECONNREFUSED, EAGAIN), a connection dropped or answered late
		 * (ECONNRESET, ETIMEDOUT), a queue closed under us (ESHUTDOWN), and the
		 * old connection's devices not yet released (EBUSY) or not yet there
		 * (ENOENT from ATTACH). Anything else is an answer, not a restart.
		 */
		int left = frc_remaining_ms(deadline);
		if (!err) {
			err = frc_attach(c, q, abi, ids, count, left < 0 ? FRC_DEFAULT_TIMEOUT_MS : left > 0 ? left : 1);
			if (err >= 0)
				return err;
			frc_close(c);
		}
		if (err != -ENOENT && err != -ECONNREFUSED && err != -EAGAIN && err != -ECONNRESET && err != -ETIMEDOUT &&
		    err != -ESHUTDOWN && err != -EBUSY)
			return err;
		if (frc_remaining_ms(deadline) == 0) {
			char last[FRC_ERROR_MAX];
			memcpy(last, c->error, sizeof last);
			return frc_fail(c->error, ETIMEDOUT, "reconnect to %s: still failing after %d ms: %s", path,
					timeout_ms, last);
		}
		struct timespec pause = { 0, 20 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
}

/* ---- the nested IOMMU (Docs/NESTED.md §3) --------------------------------
 * The payloads are built here, argsz and all, so a caller cannot send a
 * malformed one; what only the service can judge (the seals, overlaps, the
 * guest's table, a device not held) comes back as its errno and reason.
 */

int frc_add_guest_memory(struct frc_client *c, int fd, uint64_t gpa, uint64_t size, uint64_t offset)
{
	if (fd < 0)
		return frc_fail(c->error, EBADF, "ADD_GUEST_MEMORY: no descriptor");
	struct faultring_msg_guest_memory m = { sizeof m, 0, gpa, size, offset };
	size_t len;
	return transact(c, FAULTRING_CMD_ADD_GUEST_MEMORY, 0, &m, sizeof m, fd, &len);
}

/*
 * BIND (with its eight data words) or UNBIND (@data NULL) of @format on @ids.
 * The two payloads share their head (argsz, flags, format, pasid,
 * device_count, reserved); BIND's data words sit between it and the ids.
 */
static int send_device_set(struct frc_client *c, uint16_t command, const char *what, uint32_t format, uint32_t pasid,
			   const uint64_t data[8], const uint32_t *ids, unsigned count)
{
	int err = check_ids(c, what, ids, count, 1);
	if (err)
		return err;
	union {
		struct faultring_msg_bind bind;
		struct faultring_msg_unbind unbind;
		uint8_t bytes[sizeof(struct faultring_msg_bind) + sizeof(uint32_t) * FRC_MAX_DEVICES];
	} u;
	memset(&u, 0, sizeof u);
	size_t head = data ? sizeof u.bind : sizeof u.unbind;
	u.unbind.argsz = (uint32_t)(head + sizeof(uint32_t) * count);
	u.unbind.format = format;
	u.unbind.pasid = pasid;
	u.unbind.device_count = count;
	if (data)
		memcpy(u.bind.data, data, sizeof u.bind.data);
	memcpy(u.bytes + head, ids, sizeof(uint32_t) * count);
	size_t len;
	return transact(c, command, 0, &u, u.unbind.argsz, -1, &len);
}

int frc_bind_vtd_pasid(struct frc_client *c, uint32_t pasid, const uint64_t entry[8], const uint32_t *ids, unsigned count)
{
	if (!entry)
		return frc_fail(c->error, EINVAL, "BIND: no PASID-table entry");
	return send_device_set(c, FAULTRING_CMD_BIND, "BIND", FAULTRING_BIND_VTD_PASID, pasid, entry, ids, count);
}

int frc_bind_smmuv3_ste(struct frc_client *c, const uint64_t ste[2], const uint32_t *ids, unsigned count)
{
	if (!ste)
		return frc_fail(c->error, EINVAL, "BIND: no STE words");
	const uint64_t data[8] = { ste[0], ste[1] };
	return send_device_set(c, FAULTRING_CMD_BIND, "BIND", FAULTRING_BIND_SMMUV3_STE, 0, data, ids, count);
}

int frc_unbind(struct frc_client *c, uint32_t format, uint32_t pasid, const uint32_t *ids, unsigned count)
{
	return send_device_set(c, FAULTRING_CMD_UNBIND, "UNBIND", format, pasid, NULL, ids, count);
}

int frc_invalidate(struct frc_client *c, uint32_t granularity, uint32_t flags, uint32_t device, uint32_t pasid,
		   uint64_t address, uint64_t size)
{
	struct faultring_msg_invalidate m = { sizeof m, flags, granularity, device, pasid, 0, address, size };
	size_t len;
	return transact(c, FAULTRING_CMD_INVALIDATE, 0, &m, sizeof m, -1, &len);
}

int frc_bind_msi(struct frc_client *c, uint64_t iova, uint64_t gpa, uint64_t size)
{
	struct faultring_msg_bind_msi m = { sizeof m, 0, iova, gpa, size };
	size_t len;
	return transact(c, FAULTRING_CMD_BIND_MSI, 0, &m, sizeof m, -1, &len);
}

int frc_unbind_msi(struct frc_client *c, uint64_t iova)
{
	struct faultring_msg_bind_msi m = { sizeof m, FAULTRING_MSI_FLAG_UNBIND, iova, 0, 0 };
	size_t len;
	return transact(c, FAULTRING_CMD_BIND_MSI, 0, &m, sizeof m, -1, &len);
}
