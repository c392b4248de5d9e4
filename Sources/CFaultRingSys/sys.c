/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "faultring_sys.h"

/* Every function returns -errno on failure (see faultring_sys.h). */
#define SYS_RET(expr) ({ long _r = (long)(expr); _r < 0 ? -(long)errno : _r; })

int faultring_sys_memfd_create(const char *name)
{
	return (int)SYS_RET(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
}

int faultring_sys_seal_size(int fd, int final)
{
	return (int)SYS_RET(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | (final ? F_SEAL_SEAL : 0)));
}

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010 /* Linux 5.1, <linux/fcntl.h> */
#endif

int faultring_sys_seal_future_write(int fd)
{
	return (int)SYS_RET(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL));
}

int faultring_sys_seal_future_write_bit(void) { return F_SEAL_FUTURE_WRITE; }

int faultring_sys_get_seals(int fd) { return (int)SYS_RET(fcntl(fd, F_GET_SEALS)); }
int faultring_sys_seal_shrink(void) { return F_SEAL_SHRINK; }
int faultring_sys_seal_grow(void) { return F_SEAL_GROW; }
int faultring_sys_seal_seal(void) { return F_SEAL_SEAL; }

int faultring_sys_terminal_columns(int fd)
{
	struct winsize size;
	if (ioctl(fd, TIOCGWINSZ, &size) < 0)
		return -errno;
	return size.ws_col;
}

int faultring_sys_die_with_parent(int sig)
{
	return (int)SYS_RET(prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0));
}

int faultring_sys_doorbell_pair(int fds[2])
{
	return (int)SYS_RET(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds));
}

int faultring_sys_eventfd(void)
{
	return (int)SYS_RET(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

int faultring_sys_set_cloexec(int fd, int on)
{
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0)
		return -errno;
	flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
	return (int)SYS_RET(fcntl(fd, F_SETFD, flags));
}

int faultring_sys_pipe(int ends[2]) { return (int)SYS_RET(pipe2(ends, O_CLOEXEC)); }

int faultring_sys_timerfd(void) { return (int)SYS_RET(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)); }

int faultring_sys_timerfd_arm(int fd, uint64_t deadline_ns)
{
	struct itimerspec spec = { 0 };
	if (deadline_ns != 0) {
		spec.it_value.tv_sec = (time_t)(deadline_ns / 1000000000ull);
		spec.it_value.tv_nsec = (long)(deadline_ns % 1000000000ull);
	}
	return (int)SYS_RET(timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL));
}

long faultring_sys_timerfd_drain(int fd)
{
	uint64_t expirations = 0;
	ssize_t n = read(fd, &expirations, sizeof expirations);
	if (n == (ssize_t)sizeof expirations)
		return (long)expirations;
	if (n < 0 && errno == EAGAIN)
		return 0;
	return n < 0 ? -errno : -EIO;
}

void faultring_sys_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause");
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

uint64_t faultring_sys_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long faultring_sys_send_fds(int sock, const void *buf, unsigned long len, const int *fds, unsigned nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > 8)
		return -EINVAL;
	if (nfds > 0) {
		memset(&control, 0, sizeof control);
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	return SYS_RET(sendmsg(sock, &msg, MSG_NOSIGNAL));
}

long faultring_sys_recv_fds(int sock, void *buf, unsigned long len, int *fds, unsigned max_fds, unsigned *nfds,
                             int *flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = CMSG_SPACE(sizeof(int) * (max_fds > 8 ? 8 : max_fds)) };
	*nfds = 0;
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_TRUNC);
	if (n < 0)
		return -errno;
	*flags = msg.msg_flags;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *incoming = (int *)CMSG_DATA(c);
		for (unsigned i = 0; i < count; i++) {
			if (*nfds < max_fds)
				fds[(*nfds)++] = incoming[i];
			else
				close(incoming[i]);
		}
	}
	return n;
}

int faultring_sys_accept(int fd) { return (int)SYS_RET(accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)); }

int faultring_sys_msg_trunc(void) { return MSG_TRUNC; }
int faultring_sys_msg_ctrunc(void) { return MSG_CTRUNC; }

int faultring_sys_peercred(int sock, uint32_t *pid, uint32_t *uid, uint32_t *gid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	*pid = (uint32_t)cred.pid;
	*uid = cred.uid;
	*gid = cred.gid;
	return 0;
}

int faultring_sys_signalfd(const int *signals, unsigned n)
{
	sigset_t set;
	sigemptyset(&set);
	for (unsigned i = 0; i < n; i++)
		sigaddset(&set, signals[i]);
	int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (rc != 0)
		return -rc; /* pthread_* return the error number itself */
	return (int)SYS_RET(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

int faultring_sys_signalfd_signo(int fd)
{
	struct signalfd_siginfo info;
	ssize_t n = read(fd, &info, sizeof info);
	if (n == (ssize_t)sizeof info)
		return (int)info.ssi_signo;
	if (n < 0 && errno == EAGAIN)
		return 0;
	return n < 0 ? -errno : -EIO; /* a short read of a signalfd cannot happen; say so loudly if it does */
}

int faultring_sys_is_tmpfs(int fd)
{
	struct statfs fs;
	if (fstatfs(fd, &fs) < 0)
		return -errno;
	return fs.f_type == TMPFS_MAGIC;
}
