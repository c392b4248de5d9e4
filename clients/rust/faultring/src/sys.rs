//! The crate's unsafe core: every `unsafe` block of the library is in this file.
//!
//! It holds three things, each behind a safe interface whose preconditions are
//! checked here:
//!
//! * system calls through `libc` (sockets, `SCM_RIGHTS`, `poll`, `fcntl`,
//!   `fstat`, `mmap`), each returning `io::Result` with the errno;
//! * [`RoRegion`] and [`RwRegion`], the two shared mappings, accessed **only**
//!   through naturally aligned single-word atomics at offsets that are
//!   bounds-checked against the mapping's length;
//! * reading the bytes of the ABI 1 record union.
//!
//! Why atomics and never references to shared structs: the other process may
//! write the memory at any time (a well-behaved producer only writes slots we
//! do not own, a hostile one writes anything). An atomic access concurrent with
//! a foreign write is a defined race: we may read a torn *record* (fields from
//! two versions), never an undefined value, and every value is validated before
//! it is used.
//!
//! Why only `Relaxed` loads on the producer region: it is mapped `PROT_READ`,
//! and Rust guarantees atomic loads on read-only memory only for `Relaxed`
//! loads of at most pointer width (`core::sync::atomic`, "Atomic accesses to
//! read-only memory"). The orderings that ABI.md asks for are built from a
//! relaxed load and a fence in `queue.rs`: *load-acquire* is a relaxed load
//! followed by `fence(Acquire)` (C11 fence–atomic synchronisation: a release
//! store read by a relaxed load followed by an acquire fence synchronises
//! with that fence); the *seq_cst re-check* of the sleep protocol is
//! `fence(SeqCst)` then a relaxed load (the two-fence form of the Dekker
//! argument of ABI.md section 4).

use std::ffi::c_void;
use std::io;
use std::mem::{size_of, MaybeUninit};
#[cfg(test)]
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(all(target_os = "linux", target_pointer_width = "64", target_endian = "little")))]
compile_error!("faultring's ABI is little-endian shared memory on 64-bit Linux (x86-64, arm64)");

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Opens an `AF_UNIX` `SOCK_SEQPACKET` socket (close-on-exec) connected to `path`.
pub(crate) fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { MaybeUninit::zeroed().assume_init() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain system call with constant arguments.
    let raw = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a descriptor socket() just returned, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un that outlives the call; `len` is within it.
        let r =
            unsafe { libc::connect(fd.as_raw_fd(), &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) };
        match cvt(r) {
            Ok(_) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `SO_DOMAIN` and `SO_TYPE` of a socket (`ENOTSOCK` for anything else).
pub(crate) fn socket_kind(fd: BorrowedFd<'_>) -> io::Result<(i32, i32)> {
    Ok((getsockopt_int(fd, libc::SO_DOMAIN)?, getsockopt_int(fd, libc::SO_TYPE)?))
}

fn getsockopt_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes and `len` is `v`'s size.
    cvt(unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, opt, &mut v as *mut libc::c_int as *mut c_void, &mut len)
    })?;
    Ok(v)
}

/// Sends one packet without blocking and without `SIGPIPE`.
pub(crate) fn send_packet(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call.
    cvt_size(unsafe {
        libc::send(fd.as_raw_fd(), buf.as_ptr() as *const c_void, buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    })
}

/// Sends one packet without blocking, with `pass` attached by `SCM_RIGHTS`
/// (the kernel duplicates it into the receiver; the caller keeps its own).
pub(crate) fn send_packet_with_fd(fd: BorrowedFd<'_>, buf: &[u8], pass: BorrowedFd<'_>) -> io::Result<usize> {
    let mut cbuf = [0u64; 4];
    let raw = pass.as_raw_fd();
    let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
    // SAFETY: CMSG_SPACE is a pure computation.
    let room = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
    assert!(room <= std::mem::size_of_val(&cbuf), "CMSG_SPACE(int) is {room} bytes");
    msg.msg_controllen = room;
    // SAFETY: `msg_control` points at `cbuf` (32 bytes, u64-aligned), which holds
    // CMSG_SPACE(sizeof(int)); CMSG_FIRSTHDR of a buffer that large is non-null
    // and in bounds, and CMSG_DATA points at room for one int within it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, raw);
    }
    // SAFETY: `msg` points at `iov` (covering `buf`, valid for reads) and `cbuf`,
    // both alive for the call; `iov_base` is only read by sendmsg.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// What [`recv_packet`] got.
pub(crate) struct Received {
    /// Bytes placed in the buffer (at most its length).
    pub len: usize,
    /// Every descriptor that arrived, already owned (closed on drop).
    pub fds: Vec<OwnedFd>,
    /// `MSG_TRUNC`: the packet was longer than the buffer.
    pub truncated: bool,
    /// `MSG_CTRUNC`: control data (descriptors) did not fit and was dropped.
    pub ctruncated: bool,
    /// Control messages that were not `SCM_RIGHTS`.
    pub foreign_cmsgs: usize,
}

/// Room for this many descriptors in one receive: more than the protocol's 4,
/// so that a server sending 5..=8 is seen (and refused) exactly, not as CTRUNC.
pub(crate) const RECV_FDS_ROOM: usize = 8;

/// Receives one packet without blocking, with `MSG_CMSG_CLOEXEC`.
///
/// Every descriptor in the control data is wrapped in an `OwnedFd` before this
/// function returns, so no error path of the caller can leak one.
pub(crate) fn recv_packet(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    // u64-aligned control buffer, large enough for RECV_FDS_ROOM descriptors.
    let mut cbuf = [0u64; 16];
    const _: () = assert!(RECV_FDS_ROOM * size_of::<RawFd>() + 64 <= 16 * 8);
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
    // SAFETY: CMSG_SPACE is a pure computation.
    let room = unsafe { libc::CMSG_SPACE((RECV_FDS_ROOM * size_of::<RawFd>()) as u32) } as usize;
    msg.msg_controllen = room.min(std::mem::size_of_val(&cbuf));
    let n = loop {
        // SAFETY: `msg` points at `iov` (covering `buf`) and `cbuf`, both valid for
        // writes of the lengths given and alive for the call.
        let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
        match cvt_size(r) {
            Ok(n) => break n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    let mut fds = Vec::new();
    let mut foreign = 0usize;
    // Take ownership of every descriptor first; validation comes later.
    // SAFETY: `msg` was filled by the kernel; CMSG_FIRSTHDR/NXTHDR only walk
    // within `msg_control[..msg_controllen]` and return null at the end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and points at a complete cmsghdr inside cbuf.
        let (level, ty, clen) = unsafe { ((*c).cmsg_level, (*c).cmsg_type, (*c).cmsg_len) };
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a pure computation.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = clen.saturating_sub(head) / size_of::<RawFd>();
            // SAFETY: CMSG_DATA points at `count` ints inside this cmsg (the
            // kernel wrote cmsg_len accordingly); it may be unaligned for int,
            // hence read_unaligned.
            let data = unsafe { libc::CMSG_DATA(c) } as *const RawFd;
            for i in 0..count {
                // SAFETY: `i < count` keeps the read inside the cmsg payload.
                let raw = unsafe { data.add(i).read_unaligned() };
                if raw >= 0 {
                    // SAFETY: the kernel installed `raw` in our table for this
                    // message; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        } else {
            foreign += 1;
        }
        // SAFETY: as for CMSG_FIRSTHDR above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    Ok(Received {
        len: n.min(buf.len()),
        fds,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        ctruncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        foreign_cmsgs: foreign,
    })
}

/// `poll(2)` on `fds` for at most `timeout_ms` (-1: no limit). `EINTR` is reported as 0 ready.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfds.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match cvt(r) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

/// What a descriptor is, as far as the queue validation needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FdInfo {
    /// `st_mode` (file type and permissions).
    pub mode: u32,
    /// `st_size`.
    pub size: i64,
    /// `fcntl(F_GETFL)`.
    pub status_flags: i32,
    /// `fcntl(F_GET_SEALS)`, or the errno it failed with (`EINVAL`: not a memfd).
    pub seals: Result<i32, i32>,
}

/// `fstat`, `F_GETFL` and `F_GET_SEALS` of a descriptor.
pub(crate) fn fd_info(fd: BorrowedFd<'_>) -> io::Result<FdInfo> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is valid for writes of a `struct stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled it (it was zeroed anyway).
    let st = unsafe { st.assume_init() };
    // SAFETY: F_GETFL takes no argument.
    let status_flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: F_GET_SEALS takes no argument.
    let seals = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL));
    Ok(FdInfo { mode: st.st_mode, size: st.st_size, status_flags, seals })
}

/// Rings a doorbell: sends one 8-byte datagram holding `1u64` without blocking
/// and without `SIGPIPE`. `EAGAIN` (the peer's queue is full of earlier rings,
/// so a ring is already pending) counts as success.
pub(crate) fn ring_doorbell(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    loop {
        // SAFETY: `one` is valid for reads of 8 bytes for the call.
        let r = unsafe {
            libc::send(
                fd.as_raw_fd(),
                one.as_ptr() as *const c_void,
                one.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        match cvt_size(r) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Drains a doorbell: reads datagrams until `EAGAIN`, at most `max` of them
/// (a peer that rings faster than we drain cannot keep us here).
/// Returns how many were read.
pub(crate) fn drain_doorbell(fd: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < max {
        // SAFETY: `buf` is valid for writes of 8 bytes for the call.
        let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr() as *mut c_void, buf.len(), libc::MSG_DONTWAIT) };
        match cvt_size(r) {
            Ok(_) => n += 1,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A `MAP_SHARED` mapping of a whole memfd, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL): it aliases
        // no Rust object. `len` is the file's sealed size, so no access inside
        // it can fault with SIGBUS.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p as *mut u8).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
        Ok(Mapping { ptr, len })
    }

    /// Pointer to the `T`-sized, `T`-aligned word at `off`; `None` if the word
    /// is not entirely inside the mapping or is misaligned.
    fn word<T>(&self, off: usize) -> Option<*mut T> {
        let end = off.checked_add(size_of::<T>())?;
        if end > self.len || off % size_of::<T>() != 0 {
            return None;
        }
        // The mapping is page-aligned, so `off % size == 0` makes the word aligned.
        // SAFETY: `off + size_of::<T>() <= len`: the result stays inside the mapping.
        Some(unsafe { self.ptr.as_ptr().add(off) } as *mut T)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range mmap returned; no reference into it outlives
        // `self` (accessors borrow the region).
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut c_void, self.len) };
    }
}

/// The producer region, mapped `PROT_READ`. Only relaxed word loads.
pub(crate) struct RoRegion(Mapping);

// SAFETY: the mapping is only accessed through atomics, from any thread.
unsafe impl Send for RoRegion {}
// SAFETY: as above; no interior state besides the shared memory itself.
unsafe impl Sync for RoRegion {}

/// Why a word access was refused: out of the mapping, or misaligned. Only a
/// bug in this crate can cause it, since every offset is validated at attach.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutOfBounds {
    pub off: usize,
}

impl RoRegion {
    /// Maps `len` bytes of `fd` read-only and shared.
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<RoRegion> {
        Ok(RoRegion(Mapping::new(fd, len, libc::PROT_READ)?))
    }

    /// Length of the mapping.
    pub(crate) fn len(&self) -> usize {
        self.0.len
    }

    /// Relaxed atomic load of the `u32` at `off`.
    #[inline]
    pub(crate) fn load_u32(&self, off: usize) -> Result<u32, OutOfBounds> {
        let p = self.0.word::<u32>(off).ok_or(OutOfBounds { off })?;
        // SAFETY: `p` is in bounds, 4-aligned, and valid while `self` lives.
        // A relaxed 4-byte atomic load is valid on read-only memory.
        Ok(unsafe { AtomicU32::from_ptr(p) }.load(Ordering::Relaxed))
    }

    /// Relaxed atomic load of the `u64` at `off`.
    #[inline]
    pub(crate) fn load_u64(&self, off: usize) -> Result<u64, OutOfBounds> {
        let p = self.0.word::<u64>(off).ok_or(OutOfBounds { off })?;
        // SAFETY: `p` is in bounds, 8-aligned, and valid while `self` lives.
        // A relaxed 8-byte atomic load is valid on read-only memory (64-bit targets).
        Ok(unsafe { AtomicU64::from_ptr(p) }.load(Ordering::Relaxed))
    }
}

/// The consumer region, mapped `PROT_READ | PROT_WRITE`.
pub(crate) struct RwRegion(Mapping);

// SAFETY: the mapping is only accessed through atomics, from any thread.
unsafe impl Send for RwRegion {}
// SAFETY: as above.
unsafe impl Sync for RwRegion {}

impl RwRegion {
    /// Maps `len` bytes of `fd` read-write and shared.
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<RwRegion> {
        Ok(RwRegion(Mapping::new(fd, len, libc::PROT_READ | libc::PROT_WRITE)?))
    }

    /// Atomic load of the `u32` at `off` with `order`.
    #[inline]
    pub(crate) fn load_u32(&self, off: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        let p = self.0.word::<u32>(off).ok_or(OutOfBounds { off })?;
        // SAFETY: `p` is in bounds, 4-aligned, writable memory valid while `self` lives.
        Ok(unsafe { AtomicU32::from_ptr(p) }.load(order))
    }

    /// Atomic store of `v` to the `u32` at `off` with `order`.
    #[inline]
    pub(crate) fn store_u32(&self, off: usize, v: u32, order: Ordering) -> Result<(), OutOfBounds> {
        let p = self.0.word::<u32>(off).ok_or(OutOfBounds { off })?;
        // SAFETY: `p` is in bounds, 4-aligned, writable memory valid while `self` lives.
        unsafe { AtomicU32::from_ptr(p) }.store(v, order);
        Ok(())
    }

    /// Atomic store of `v` to the `u64` at `off` with `order`.
    #[inline]
    pub(crate) fn store_u64(&self, off: usize, v: u64, order: Ordering) -> Result<(), OutOfBounds> {
        let p = self.0.word::<u64>(off).ok_or(OutOfBounds { off })?;
        // SAFETY: `p` is in bounds, 8-aligned, writable memory valid while `self` lives.
        unsafe { AtomicU64::from_ptr(p) }.store(v, order);
        Ok(())
    }
}

/// The 56 bytes of an ABI 1 record's union.
pub(crate) fn v1_union_bytes(u: &crate::abi::FaultringV1FaultUnion) -> [u8; 56] {
    // SAFETY: the union's members are crate-private and every constructor
    // (`from_bytes`, `from_event`, `from_prm`) initialises all 56 bytes through
    // `padding2`, so `padding2` is always fully initialised; `[u8; 56]` has no
    // invalid bit patterns.
    unsafe { u.padding2 }
}

/// Test support: a read-only region holding `bytes` (in a sealed memfd).
#[cfg(test)]
pub(crate) fn test_region(bytes: &[u8]) -> RoRegion {
    // SAFETY: a constant, NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"faultring-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
    // SAFETY: `fd` is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `bytes` is valid for reads of its length.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), bytes.as_ptr() as *const c_void, bytes.len(), 0) };
    assert_eq!(n, bytes.len() as isize);
    RoRegion::map(fd.as_fd(), bytes.len()).expect("map test region")
}
