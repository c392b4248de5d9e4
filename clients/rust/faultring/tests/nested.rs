//! The nested IOMMU's calls against a live `faultring serve --dma-devices`:
//! guest RAM as a sealed memfd, a VT-d PASID bound on a held device (its
//! DMA then raises page requests through the guest's empty table),
//! invalidations and an MSI doorbell forwarded, the bind undone; and what
//! the service refuses, each with its errno.

mod common;

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::{open_fds, watchdog, Service, TempDir};
use faultring::{Abi, Binding, Code, Error, Invalidation, Response, WaitOutcome};

fn errno(r: faultring::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(Error::Service { errno, .. }) => errno,
        Err(e) => panic!("not a service refusal: {e}"),
    }
}

/// A memfd of `size` bytes, sealed against shrinking if `sealed`.
fn memfd(size: u64, sealed: bool) -> OwnedFd {
    // SAFETY: a NUL-terminated name and valid flags; the result is checked and owned at once.
    let fd = unsafe { libc::memfd_create(c"guest-ram".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain syscalls on a descriptor we own.
    unsafe {
        assert_eq!(libc::ftruncate(fd, size as libc::off_t), 0);
        if sealed {
            assert_eq!(libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK), 0);
        }
    }
    owned
}

#[test]
fn guest_memory_bind_invalidate_msi_unbind_and_refusals() {
    let _wd = watchdog("nested", Duration::from_secs(90));
    let dir = TempDir::new("nested");
    let fds_before = open_fds();
    let svc = Service::start_with(
        &dir.socket(),
        &["--devices", "2", "--dma-devices", "--dma-pasids", "1", "--dma-step-us", "500", "--log-level", "error"],
    );
    let mut client = svc.client();
    let gpa = 1u64 << 30;
    // Present, nested (PGTT 3), DID 1, first stage at `gpa`: an empty 4-level table.
    let entry = [1 | 3 << 6, 1, gpa, 0, 0, 0, 0, 0];
    assert_eq!(errno(client.bind_vtd_pasid(1, &entry, &[1])), libc::EPERM, "bind holding no device");
    let mut q = client.attach(Abi::V2, &[1]).expect("attach");

    let unsealed = memfd(1 << 20, false);
    assert_eq!(errno(client.add_guest_memory(unsealed.as_fd(), gpa, 1 << 20, 0)), libc::EBADF);
    let ram = memfd(1 << 20, true);
    client.add_guest_memory(ram.as_fd(), gpa, 1 << 20, 0).expect("add guest memory");
    assert_eq!(errno(client.add_guest_memory(ram.as_fd(), gpa + 4096, 4096, 0)), libc::EEXIST);

    assert_eq!(errno(client.bind_vtd_pasid(1, &entry, &[2])), libc::EPERM, "a device not held");
    assert!(matches!(client.bind_vtd_pasid(1, &entry, &[]), Err(Error::InvalidArgument { .. })));
    client.bind_vtd_pasid(1, &entry, &[1]).expect("bind");

    // Device 1's stream on PASID 1 now runs and misses in the empty table.
    let mut requests = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while requests < 3 {
        assert!(Instant::now() < deadline, "{requests} page requests through the bound table in 20 s");
        match q.wait(Duration::from_millis(100)).expect("wait") {
            WaitOutcome::Ready => {}
            WaitOutcome::TimedOut => continue,
            other => panic!("queue ended: {other:?}"),
        }
        let batch = q.batch().expect("batch");
        for r in batch.iter() {
            if let Some(g) = r.group_end().expect("well-formed record") {
                assert_eq!((g.device_id(), g.pasid()), (Some(1), Some(1)));
                batch.push_response_wait(&Response::for_group(&g, Code::Invalid), Duration::from_secs(5)).expect("answer");
                requests += 1;
            }
        }
        batch.commit().expect("commit");
    }

    client.invalidate(Invalidation::Pasid(1)).expect("invalidate PASID");
    client.invalidate(Invalidation::Range { pasid: 1, address: 0x10000, size: 0x1000, leaf: true }).expect("range");
    let bad = Invalidation::Range { pasid: 1, address: 0x10000, size: 3000, leaf: false };
    assert_eq!(errno(client.invalidate(bad)), libc::EINVAL, "a range of 3000 bytes");
    let other = Invalidation::DeviceTlb { device: 2, pasid: None, range: None };
    assert_eq!(errno(client.invalidate(other)), libc::EPERM, "the ATC of a device not held");
    assert_eq!(errno(client.invalidate(Invalidation::Pasid(7))), libc::ENOENT, "a PASID not bound");

    client.bind_msi(0xFEE0_0000, gpa + 0x80000, 4096).expect("bind MSI");
    assert_eq!(errno(client.bind_msi(0xFEE0_0000, gpa + 0x80000, 4096)), libc::EBUSY, "the same doorbell twice");
    assert!(matches!(client.bind_msi(0xFEE0_0000, gpa, 3000), Err(Error::InvalidArgument { .. })));
    client.unbind_msi(0xFEE0_0000).expect("unbind MSI");

    client.unbind(Binding::VtdPasid(1), &[1]).expect("unbind");
    client.unbind(Binding::VtdPasid(1), &[1]).expect("unbind again: cannot fail");

    let stats = faultring::json::parse(&client.stats().expect("stats")).expect("json");
    let me = std::process::id() as u64;
    let nested = stats
        .get("clients")
        .and_then(|c| c.as_array())
        .and_then(|cs| cs.iter().find(|c| c.get("pid").and_then(|p| p.as_u64()) == Some(me)))
        .and_then(|c| c.get("nested"))
        .expect("this client's nested IOMMU in STATS");
    let n = |k: &str| nested.get(k).and_then(|v| v.as_u64()).unwrap_or(u64::MAX);
    assert_eq!((n("binds"), n("unbinds")), (1, 1));
    let inv = nested.get("invalidations").expect("invalidations");
    assert_eq!(inv.get("pasid").and_then(|v| v.as_u64()), Some(1));
    assert_eq!(inv.get("range").and_then(|v| v.as_u64()), Some(1));

    client.bye().expect("BYE");
    drop(q);
    drop((unsealed, ram));
    drop(client);
    drop(svc);
    assert_eq!(open_fds(), fds_before, "descriptors left open");
}
