//! The control connection (Docs/PROTOCOL.md): HELLO, ATTACH, DETACH, STATS, BYE.
//!
//! One request is outstanding at a time; each waits for its reply at most
//! [`ClientOptions::reply_timeout`]. Every reply is validated before it is
//! used: packet length against the header's `size`, `MSG_TRUNC` and
//! `MSG_CTRUNC`, the reply's `id`, `command` and `flags`, its payload length,
//! and the number of descriptors. Descriptors arrive as `OwnedFd`s (with
//! `MSG_CMSG_CLOEXEC`), so a refused reply closes them.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::protocol::{self as proto, FaultringMsgAttachReply, FaultringMsgHeader};
use crate::queue::{Queue, QueueFiles, QueueOptions};
use crate::sys;
use crate::Abi;

/// Tunables of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Sent in HELLO as `"client"` (diagnostics).
    pub client_name: String,
    /// How long a request waits for its reply (default 5 s). After a timeout
    /// the connection is unusable ([`Error::NotConnected`]); reconnect.
    pub reply_timeout: Duration,
    /// Options of the queues this client attaches.
    pub queue: QueueOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_name: format!("faultring-rust/{}", env!("CARGO_PKG_VERSION")),
            reply_timeout: Duration::from_secs(5),
            queue: QueueOptions::default(),
        }
    }
}

/// The service's HELLO reply: the raw JSON text plus the fields this crate uses.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// The JSON object as the service sent it.
    pub raw: String,
    /// `protocolVersion` (always 1 here; any other is refused).
    pub protocol_version: u32,
    /// `abis`: record ABIs offered.
    pub abis: Vec<u32>,
    /// `maxMessageSize`.
    pub max_message_size: Option<u64>,
    /// `maxDevicesPerAttach`.
    pub max_devices_per_attach: Option<u64>,
    /// `entryCount`: fault ring entries of a queue.
    pub entry_count: Option<u64>,
    /// `responseCount`: response ring slots of a queue.
    pub response_count: Option<u64>,
    /// `devices`: the device ids the service has.
    pub devices: Vec<u32>,
    /// `eventLoop`: `io_uring` or `poll`.
    pub event_loop: Option<String>,
    /// `pageRequestTimeoutMilliseconds`.
    pub page_request_timeout_ms: Option<u64>,
    /// `features`.
    pub features: Vec<String>,
}

impl Capabilities {
    fn parse(raw: String) -> Result<Capabilities> {
        let v = json::parse(&raw).map_err(|e| Error::protocol("HELLO reply", format!("not JSON: {e}")))?;
        if v.as_object().is_none() {
            return Err(Error::protocol("HELLO reply", "not a JSON object"));
        }
        let pv = v.get("protocolVersion").and_then(Value::as_u64);
        if pv != Some(u64::from(proto::PROTOCOL_VERSION)) {
            return Err(Error::protocol(
                "HELLO reply protocolVersion",
                format!("{:?}, this client speaks {}", v.get("protocolVersion"), proto::PROTOCOL_VERSION),
            ));
        }
        let u32s = |k: &str| -> Vec<u32> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok())).collect())
                .unwrap_or_default()
        };
        let num = |k: &str| v.get(k).and_then(Value::as_u64);
        Ok(Capabilities {
            protocol_version: proto::PROTOCOL_VERSION,
            abis: u32s("abis"),
            max_message_size: num("maxMessageSize"),
            max_devices_per_attach: num("maxDevicesPerAttach"),
            entry_count: num("entryCount"),
            response_count: num("responseCount"),
            devices: u32s("devices"),
            event_loop: v.get("eventLoop").and_then(Value::as_str).map(str::to_owned),
            page_request_timeout_ms: num("pageRequestTimeoutMilliseconds"),
            features: v
                .get("features")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            raw,
        })
    }
}

/// The ATTACH reply (`struct faultring_msg_attach_reply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachInfo {
    /// Fault ring entries.
    pub entry_count: u32,
    /// Response ring slots.
    pub response_count: u32,
    /// Devices now attached to this connection.
    pub attached: u32,
}

pub(crate) struct Reply {
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// A control connection to `faultring serve`.
///
/// ```no_run
/// use faultring::{Abi, Client, Code, Response, WaitOutcome};
/// use std::time::Duration;
/// let mut client = Client::connect("/run/faultring.sock")?;
/// let mut queue = client.attach(Abi::V2, &[1, 2])?;
/// loop {
///     match queue.wait(Duration::from_secs(1))? {
///         WaitOutcome::Ready => {}
///         WaitOutcome::TimedOut => continue,
///         WaitOutcome::Closed | WaitOutcome::ServiceGone => break,
///     }
///     let batch = queue.batch()?;
///     for rec in batch.iter() {
///         if let Some(group) = rec.group_end()? {
///             batch.push_response_wait(&Response::for_group(&group, Code::Success), Duration::from_secs(1))?;
///         }
///     }
///     batch.commit()?;
/// }
/// # Ok::<(), faultring::Error>(())
/// ```
pub struct Client {
    sock: Option<Arc<OwnedFd>>,
    path: Option<PathBuf>,
    opts: ClientOptions,
    next_id: u16,
    caps: Capabilities,
    broken: Option<String>,
    abi: Option<Abi>,
    devices: Vec<u32>,
    buf: Vec<u8>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.path)
            .field("abi", &self.abi)
            .field("devices", &self.devices)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the service's socket and says HELLO, with default options.
    ///
    /// # Errors
    /// [`Error::Os`] (`connect`), the errors of [`Client::from_fd_with`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        Self::connect_with(path, ClientOptions::default())
    }

    /// Connects and says HELLO with `opts`.
    pub fn connect_with(path: impl AsRef<Path>, opts: ClientOptions) -> Result<Client> {
        let path = path.as_ref();
        let fd = sys::connect_seqpacket(path).map_err(|e| Error::os("connect to the control socket", e))?;
        let mut c = Self::from_fd_with(fd, opts)?;
        c.path = Some(path.to_owned());
        Ok(c)
    }

    /// Says HELLO on an already connected `AF_UNIX` `SOCK_SEQPACKET` socket.
    pub fn from_fd(fd: OwnedFd) -> Result<Client> {
        Self::from_fd_with(fd, ClientOptions::default())
    }

    /// Says HELLO on `fd` with `opts`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `fd` is not a `SOCK_SEQPACKET` socket;
    /// [`Error::Service`] if HELLO is refused; [`Error::Protocol`] if the reply
    /// is malformed or its `protocolVersion` is not 1; [`Error::Timeout`].
    pub fn from_fd_with(fd: OwnedFd, opts: ClientOptions) -> Result<Client> {
        match sys::socket_kind(fd.as_fd()) {
            Ok((libc::AF_UNIX, libc::SOCK_SEQPACKET)) => {}
            Ok((d, t)) => {
                return Err(Error::invalid("fd", format!("socket domain {d} type {t}, need AF_UNIX SOCK_SEQPACKET")))
            }
            Err(e) => return Err(Error::os("getsockopt of the control socket", e)),
        }
        let mut c = Client {
            sock: Some(Arc::new(fd)),
            path: None,
            opts,
            next_id: 1,
            caps: Capabilities {
                raw: String::new(),
                protocol_version: 0,
                abis: Vec::new(),
                max_message_size: None,
                max_devices_per_attach: None,
                entry_count: None,
                response_count: None,
                devices: Vec::new(),
                event_loop: None,
                page_request_timeout_ms: None,
                features: Vec::new(),
            },
            broken: None,
            abi: None,
            devices: Vec::new(),
            buf: vec![0u8; proto::MSG_MAX],
        };
        c.hello()?;
        Ok(c)
    }

    /// Connects and says HELLO, retrying until `timeout` while the service is
    /// not there yet (`ENOENT`, `ECONNREFUSED`), refuses new connections for
    /// now (`EAGAIN`), or hangs up during HELLO.
    ///
    /// # Errors
    /// The last error once `timeout` has passed; any other error at once.
    pub fn connect_with_retry(path: impl AsRef<Path>, opts: ClientOptions, timeout: Duration) -> Result<Client> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            match Self::connect_with(path.as_ref(), opts.clone()) {
                Ok(c) => return Ok(c),
                Err(e) if Self::transient(&e) && Instant::now() < deadline => {
                    std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn transient(e: &Error) -> bool {
        match e {
            Error::Os { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::ENOENT | libc::ECONNREFUSED | libc::EAGAIN | libc::ECONNRESET)
                )
            }
            Error::Service { errno, .. } => *errno == libc::EAGAIN,
            Error::ServiceGone => true,
            _ => false,
        }
    }

    /// Replaces this connection with a new one to the same path and
    /// re-attaches the same devices with the same ABI, retrying until
    /// `timeout`: while the socket is missing or refuses, and while ATTACH
    /// answers `ENOENT` (devices not there yet) or `EBUSY` (the old connection
    /// not yet retired). Returns the new queue; drop the old one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if this client was not made by `connect`
    /// (no path) or never attached; otherwise the last error after `timeout`.
    pub fn reconnect(&mut self, timeout: Duration) -> Result<Queue> {
        let Some(path) = self.path.clone() else {
            return Err(Error::invalid("reconnect", "this client was made from a descriptor, not a path"));
        };
        let Some(abi) = self.abi else {
            return Err(Error::invalid("reconnect", "nothing was attached on this connection"));
        };
        let devices = self.devices.clone();
        // Hang up the old connection now (a queue of it keeps its own reference).
        self.sock = None;
        self.broken = Some("reconnecting".into());
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = Self::connect_with_retry(&path, self.opts.clone(), left).and_then(|mut c| {
                let q = c.attach(abi, &devices)?;
                Ok((c, q))
            });
            match attempt {
                Ok((c, q)) => {
                    *self = c;
                    return Ok(q);
                }
                Err(e) => {
                    let retry = Self::transient(&e)
                        || matches!(&e, Error::Service { errno, .. } if *errno == libc::ENOENT || *errno == libc::EBUSY);
                    if !retry || Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// The HELLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The devices attached through this connection (as this client knows them).
    pub fn attached_devices(&self) -> &[u32] {
        &self.devices
    }

    /// The ABI of this connection's queue, once attached.
    pub fn abi(&self) -> Option<Abi> {
        self.abi
    }

    /// The control socket (e.g. to `poll` it yourself).
    pub fn control_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.sock.as_deref().map(|s| s.as_fd())
    }

    fn hello(&mut self) -> Result<()> {
        let mut payload = String::from("{\"protocolVersion\":");
        payload.push_str(&proto::PROTOCOL_VERSION.to_string());
        payload.push_str(",\"client\":");
        json::write_string(&mut payload, &self.opts.client_name);
        payload.push('}');
        let reply = self.request(proto::CMD_HELLO, 0, payload.as_bytes())?;
        let text = String::from_utf8(reply.payload)
            .map_err(|_| self.poison(Error::protocol("HELLO reply", "payload is not UTF-8")))?;
        self.caps = Capabilities::parse(text).map_err(|e| self.poison(e))?;
        Ok(())
    }

    pub(crate) fn check_devices(&self, devices: &[u32], allow_empty: bool) -> Result<()> {
        let max = proto::MAX_DEVICES_PER_MESSAGE;
        if devices.len() > max || (devices.is_empty() && !allow_empty) {
            return Err(Error::invalid("devices", format!("{} devices, must be 1..={max}", devices.len())));
        }
        for (i, d) in devices.iter().enumerate() {
            if devices[..i].contains(d) {
                return Err(Error::invalid("devices", format!("device {d} named twice")));
            }
        }
        Ok(())
    }

    /// ATTACHes `devices` with record ABI `abi` and returns the connection's
    /// queue, validated, mapped and negotiated.
    ///
    /// This must be the connection's first successful ATTACH (the one whose
    /// reply carries the queue's four descriptors); add devices later with
    /// [`Client::attach_more`]. An ABI 1 queue serves exactly one device.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (0 or more than 64 devices, a duplicate, ABI 1
    /// with several devices, a queue already made); [`Error::Service`] (e.g.
    /// `ENOENT` unknown device, `EBUSY` another client's; nothing attached);
    /// [`Error::Protocol`] (reply not 16 bytes, `queue_created` not 1, not
    /// exactly 4 descriptors); the errors of [`Queue::from_files`]. If the
    /// descriptors are refused the connection is unusable (the service made
    /// the queue): reconnect.
    pub fn attach(&mut self, abi: Abi, devices: &[u32]) -> Result<Queue> {
        if self.abi.is_some() {
            return Err(Error::invalid("attach", "this connection has its queue already; use attach_more"));
        }
        self.check_devices(devices, false)?;
        if abi == Abi::V1 && devices.len() != 1 {
            return Err(Error::invalid(
                "devices",
                format!("an ABI 1 queue serves exactly one device, not {}", devices.len()),
            ));
        }
        let reply = self.request(proto::CMD_ATTACH, 0, &attach_payload(abi.raw(), devices))?;
        let r = FaultringMsgAttachReply::decode(&reply.payload).ok_or_else(|| {
            self.poison(Error::protocol(
                "ATTACH reply payload length",
                format!("{} bytes, must be {}", reply.payload.len(), core::mem::size_of::<FaultringMsgAttachReply>()),
            ))
        })?;
        if r.queue_created != 1 {
            return Err(self.poison(Error::protocol(
                "ATTACH reply queue_created",
                format!("{} on the first ATTACH, must be 1", r.queue_created),
            )));
        }
        let files = QueueFiles::from_vec(reply.fds).map_err(|e| self.poison(e))?;
        self.abi = Some(abi);
        self.devices = devices.to_vec();
        let control = self.sock.clone();
        Queue::build(files, abi, control, self.opts.queue.clone(), Some((r.entry_count, r.response_count)))
            .map_err(|e| self.poison(e))
    }

    /// ATTACHes more devices to this connection's queue (no descriptors come back).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (no queue yet, ABI 1 queue, bad device list);
    /// [`Error::Service`]; [`Error::Protocol`] (reply not 16 bytes,
    /// `queue_created` not 0, or descriptors attached; they are closed).
    pub fn attach_more(&mut self, devices: &[u32]) -> Result<AttachInfo> {
        let Some(abi) = self.abi else {
            return Err(Error::invalid("attach_more", "no queue yet; call attach first"));
        };
        if abi == Abi::V1 {
            return Err(Error::invalid("attach_more", "an ABI 1 queue serves exactly one device"));
        }
        self.check_devices(devices, false)?;
        let reply = self.request(proto::CMD_ATTACH, 0, &attach_payload(abi.raw(), devices))?;
        if !reply.fds.is_empty() {
            return Err(self.poison(Error::protocol(
                "descriptor count",
                format!("{} descriptors on a later ATTACH reply, must be 0", reply.fds.len()),
            )));
        }
        let r = FaultringMsgAttachReply::decode(&reply.payload).ok_or_else(|| {
            self.poison(Error::protocol(
                "ATTACH reply payload length",
                format!("{} bytes, must be 16", reply.payload.len()),
            ))
        })?;
        if r.queue_created != 0 {
            return Err(self.poison(Error::protocol(
                "ATTACH reply queue_created",
                format!("{} on a later ATTACH, must be 0", r.queue_created),
            )));
        }
        for d in devices {
            if !self.devices.contains(d) {
                self.devices.push(*d);
            }
        }
        Ok(AttachInfo { entry_count: r.entry_count, response_count: r.response_count, attached: r.attached })
    }

    /// DETACHes `devices` (an empty slice: all of this connection's). Their
    /// outstanding page requests are answered INVALID by the service. The
    /// queue stays open.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (more than 64, a duplicate);
    /// [`Error::Service`]; [`Error::Protocol`] (a reply payload).
    pub fn detach(&mut self, devices: &[u32]) -> Result<()> {
        self.check_devices(devices, true)?;
        let mut p = Vec::with_capacity(4 + 4 * devices.len());
        p.extend_from_slice(&(devices.len() as u32).to_le_bytes());
        for d in devices {
            p.extend_from_slice(&d.to_le_bytes());
        }
        let reply = self.request(proto::CMD_DETACH, 0, &p)?;
        self.expect_empty("DETACH reply", &reply)?;
        if devices.is_empty() {
            self.devices.clear();
        } else {
            self.devices.retain(|d| !devices.contains(d));
        }
        Ok(())
    }

    /// STATS as JSON text (`Docs/stats.v1.schema.json`); parse it with
    /// [`crate::json::parse`].
    ///
    /// # Errors
    /// [`Error::Protocol`] if the reply is not UTF-8 JSON with an object at
    /// the top; [`Error::Service`]; [`Error::Timeout`].
    pub fn stats(&mut self) -> Result<String> {
        let reply = self.request(proto::CMD_STATS, 0, &[])?;
        let text =
            String::from_utf8(reply.payload).map_err(|_| self.poison(Error::protocol("STATS reply", "not UTF-8")))?;
        match json::parse(&text) {
            Ok(v) if v.as_object().is_some() => Ok(text),
            Ok(_) => Err(self.poison(Error::protocol("STATS reply", "not a JSON object"))),
            Err(e) => Err(self.poison(Error::protocol("STATS reply", format!("not JSON: {e}")))),
        }
    }

    /// STATS in Prometheus text format (the `TEXT` flag).
    pub fn stats_prometheus(&mut self) -> Result<String> {
        let reply = self.request(proto::CMD_STATS, proto::MSG_TEXT, &[])?;
        String::from_utf8(reply.payload).map_err(|_| self.poison(Error::protocol("STATS reply", "not UTF-8")))
    }

    /// Says BYE: the service replies, closes the queue (`state = 3`) and the
    /// connection. The client is unusable afterwards (except [`Client::reconnect`]).
    pub fn bye(&mut self) -> Result<()> {
        let reply = self.request(proto::CMD_BYE, 0, &[])?;
        self.expect_empty("BYE reply", &reply)?;
        self.broken = Some("said BYE".into());
        self.sock = None;
        Ok(())
    }

    pub(crate) fn expect_empty(&mut self, what: &'static str, reply: &Reply) -> Result<()> {
        if !reply.payload.is_empty() {
            return Err(
                self.poison(Error::protocol(what, format!("{} payload bytes, expected none", reply.payload.len())))
            );
        }
        Ok(())
    }

    fn poison(&mut self, e: Error) -> Error {
        if self.broken.is_none() {
            self.broken = Some(e.to_string());
        }
        e
    }

    /// Sends one request and returns its validated reply (error replies become
    /// [`Error::Service`]).
    pub(crate) fn request(&mut self, command: u16, flags: u32, payload: &[u8]) -> Result<Reply> {
        self.request_passing(command, flags, payload, None)
    }

    /// [`Client::request`], with `pass` sent along by `SCM_RIGHTS` if given.
    pub(crate) fn request_passing(
        &mut self,
        command: u16,
        flags: u32,
        payload: &[u8],
        pass: Option<BorrowedFd<'_>>,
    ) -> Result<Reply> {
        if let Some(why) = &self.broken {
            return Err(Error::NotConnected { cause: why.clone() });
        }
        let Some(sock) = self.sock.clone() else {
            return Err(Error::NotConnected { cause: "no connection".into() });
        };
        let size = proto::HEADER_SIZE + payload.len();
        if size > proto::MSG_MAX {
            return Err(Error::invalid(
                "payload",
                format!("{size} bytes exceeds the {} byte message limit", proto::MSG_MAX),
            ));
        }
        let id = self.next_id;
        self.next_id = match self.next_id.wrapping_add(1) {
            0 => 1, // id 0 is what unsolicited error replies carry
            n => n,
        };
        let header = FaultringMsgHeader { id, command, size: size as u32, flags, error: 0 };
        let mut msg = Vec::with_capacity(size);
        msg.extend_from_slice(&header.encode());
        msg.extend_from_slice(payload);
        let deadline = Instant::now() + self.opts.reply_timeout;
        let r = self.exchange(&sock, &msg, pass, deadline, header);
        match r {
            Err(e) if e.breaks_connection() => Err(self.poison(e)),
            Err(e @ Error::Service { errno: libc::EACCES, .. }) => Err(self.poison(e)),
            other => other,
        }
    }

    fn wait_fd(&self, sock: &OwnedFd, events: i16, deadline: Instant, op: &'static str) -> Result<i16> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout { op, after: self.opts.reply_timeout });
            }
            let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            let mut fds = [libc::pollfd { fd: sock.as_raw_fd(), events, revents: 0 }];
            if sys::poll(&mut fds, ms).map_err(|e| Error::os("poll control socket", e))? > 0 {
                return Ok(fds[0].revents);
            }
        }
    }

    fn exchange(
        &mut self,
        sock: &OwnedFd,
        msg: &[u8],
        pass: Option<BorrowedFd<'_>>,
        deadline: Instant,
        req: FaultringMsgHeader,
    ) -> Result<Reply> {
        let cmd = proto::command_name(req.command);
        // Send (a hung server with a full queue must not block us).
        loop {
            let rev = self.wait_fd(sock, libc::POLLOUT, deadline, "the control socket to accept a request")?;
            if rev & libc::POLLOUT == 0 && rev & (libc::POLLHUP | libc::POLLERR) != 0 {
                return Err(Error::ServiceGone);
            }
            let sent = match pass {
                Some(fd) => sys::send_packet_with_fd(sock.as_fd(), msg, fd),
                None => sys::send_packet(sock.as_fd(), msg),
            };
            match sent {
                Ok(n) if n == msg.len() => break,
                Ok(n) => return Err(Error::protocol("send", format!("{n} of {} bytes sent", msg.len()))),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)) => {
                    return Err(Error::ServiceGone)
                }
                Err(e) => return Err(Error::os("send request", e)),
            }
        }
        // Receive exactly one reply.
        let got = loop {
            self.wait_fd(sock, libc::POLLIN, deadline, "the service's reply")?;
            match sys::recv_packet(sock.as_fd(), &mut self.buf) {
                Ok(r) => break r,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Err(Error::ServiceGone),
                Err(e) => return Err(Error::os("recvmsg reply", e)),
            }
        };
        // From here on, `got.fds` owns every received descriptor: each `return
        // Err` below drops (closes) them.
        if got.ctruncated {
            return Err(Error::protocol(
                "control data",
                format!("MSG_CTRUNC: more descriptors than the {} a message may carry", proto::MSG_FDS_MAX),
            ));
        }
        if got.foreign_cmsgs != 0 {
            return Err(Error::protocol(
                "control data",
                format!("{} control messages other than SCM_RIGHTS", got.foreign_cmsgs),
            ));
        }
        if got.truncated {
            return Err(Error::protocol(
                "message size",
                format!("reply longer than {} bytes (MSG_TRUNC)", proto::MSG_MAX),
            ));
        }
        if got.len == 0 && got.fds.is_empty() {
            // SOCK_SEQPACKET: 0 bytes means the peer closed the connection.
            return Err(Error::ServiceGone);
        }
        let bytes = &self.buf[..got.len];
        let Some(h) = FaultringMsgHeader::decode(bytes) else {
            return Err(Error::protocol("message size", format!("{} bytes, shorter than the 16-byte header", got.len)));
        };
        if h.size as usize != got.len {
            return Err(Error::protocol(
                "header size",
                format!("header says {} bytes, the packet has {}", h.size, got.len),
            ));
        }
        if h.flags & !proto::MSG_FLAGS_KNOWN != 0 {
            return Err(Error::protocol(
                "header flags",
                format!("unknown bits 0x{:x}", h.flags & !proto::MSG_FLAGS_KNOWN),
            ));
        }
        if h.flags & proto::MSG_REPLY == 0 {
            return Err(Error::protocol("header flags", format!("0x{:x} lacks REPLY", h.flags)));
        }
        let reason = || String::from_utf8_lossy(&bytes[proto::HEADER_SIZE..]).into_owned();
        if h.flags & proto::MSG_ERROR != 0 {
            if h.error == 0 || h.error > 4095 {
                return Err(Error::protocol("header error", format!("error reply with errno {}", h.error)));
            }
            if !got.fds.is_empty() {
                return Err(Error::protocol(
                    "descriptor count",
                    format!("{} descriptors on an error reply", got.fds.len()),
                ));
            }
            // An unsolicited error (id 0: e.g. EACCES before closing, or a
            // reply to a message the service could not parse) or ours.
            if h.id == req.id && h.command == req.command || h.id == 0 {
                return Err(Error::Service {
                    command: if h.id == 0 { h.command } else { req.command },
                    errno: h.error as i32,
                    reason: reason(),
                });
            }
        } else if h.error != 0 {
            return Err(Error::protocol("header error", format!("errno {} on a reply without ERROR", h.error)));
        }
        if h.id != req.id {
            return Err(Error::protocol("reply id", format!("{} answers request {} ({cmd})", h.id, req.id)));
        }
        if h.command != req.command {
            return Err(Error::protocol(
                "reply command",
                format!("{} ({}) answers {cmd}", h.command, proto::command_name(h.command)),
            ));
        }
        if h.flags & proto::MSG_TEXT != 0 && !(req.command == proto::CMD_STATS && req.flags & proto::MSG_TEXT != 0) {
            return Err(Error::protocol("header flags", format!("TEXT on a {cmd} reply")));
        }
        if req.command != proto::CMD_ATTACH && !got.fds.is_empty() {
            return Err(Error::protocol("descriptor count", format!("{} descriptors on a {cmd} reply", got.fds.len())));
        }
        Ok(Reply { payload: bytes[proto::HEADER_SIZE..].to_vec(), fds: got.fds })
    }
}

fn attach_payload(abi: u32, devices: &[u32]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + 4 * devices.len());
    p.extend_from_slice(&abi.to_le_bytes());
    p.extend_from_slice(&(devices.len() as u32).to_le_bytes());
    for d in devices {
        p.extend_from_slice(&d.to_le_bytes());
    }
    p
}
