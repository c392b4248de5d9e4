//! Test helpers: a real `faultring serve` child process, temporary
//! directories, a watchdog, and descriptor counting.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultring::{Client, ClientOptions};

/// The service binary: `$FAULTRING_BIN`, or `<repo>/.build/debug/faultring`.
pub fn faultring_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FAULTRING_BIN") {
        return PathBuf::from(p);
    }
    // CARGO_MANIFEST_DIR = <repo>/clients/rust/faultring
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../.build/debug/faultring")
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "faultring-rust-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn socket(&self) -> PathBuf {
        self.0.join("faultring.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `faultring serve`, stopped (SIGTERM, then SIGKILL) and reaped on drop.
pub struct Service {
    child: Option<Child>,
    pub socket: PathBuf,
}

/// The brief's command line: 4 devices, 2000 groups/s each, quiet.
pub const DEFAULT_ARGS: &[&str] = &["--devices", "4", "--rate", "2000", "--log-level", "error"];

impl Service {
    pub fn start(socket: &Path) -> Service {
        Self::start_with(socket, DEFAULT_ARGS)
    }

    pub fn start_with(socket: &Path, args: &[&str]) -> Service {
        let bin = faultring_bin();
        assert!(
            bin.exists(),
            "faultring binary not found at {} (set FAULTRING_BIN or build the Swift package)",
            bin.display()
        );
        let mut cmd = Command::new(&bin);
        cmd.arg("serve").arg("--socket-path").arg(socket).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        // If the test process dies (watchdog, panic=abort), take the service with it.
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child before exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn faultring serve");
        let svc = Service { child: Some(child), socket: socket.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "faultring serve did not create {} in 15 s", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        svc
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) of our own, not yet reaped, child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits for the child to exit, at most `limit`; `None` if it did not.
    fn reap_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then reap (SIGKILL after 10 s).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        if let Some(st) = self.reap_within(Duration::from_secs(10)) {
            return Some(st);
        }
        self.kill();
        None
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.reap_within(Duration::from_secs(10));
    }

    pub fn client(&self) -> Client {
        Client::connect_with_retry(&self.socket, ClientOptions::default(), Duration::from_secs(10))
            .expect("connect to faultring serve")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

/// Aborts the whole test process if a test runs longer than `limit`, so a
/// hang becomes a failure (the services die with it: PR_SET_PDEATHSIG).
pub struct Watchdog(Arc<AtomicBool>);

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("watchdog: test {name} exceeded {limit:?}; aborting");
        std::process::exit(124);
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Open descriptors of this process.
pub fn open_fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let t = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
            format!("{n} -> {t}")
        })
        .collect();
    v.sort();
    v
}
