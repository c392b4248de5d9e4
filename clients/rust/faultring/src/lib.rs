//! Client library for **faultring**, an IOMMU fault-reporting service with a
//! shared-memory ring ABI.
//!
//! * [`Client`]: the control socket (`Docs/PROTOCOL.md`): HELLO, ATTACH,
//!   DETACH, STATS, BYE, with a reply timeout and validation of every reply.
//! * [`Queue`]: the shared-memory queue (`Docs/ABI.md`): descriptor and header
//!   validation, ABI negotiation, zero-copy [`Batch`]es of typed [`Record`]
//!   views, well-formed [`Response`]s, and the doorbell sleep/wake protocol
//!   ([`Queue::wait`]), which tells a closed queue ([`WaitOutcome::Closed`])
//!   from a vanished service ([`WaitOutcome::ServiceGone`]).
//! * [`abi`] and [`protocol`]: `#[repr(C)]` mirrors of the C headers, pinned
//!   by compile-time offset assertions.
//!
//! ```no_run
//! use faultring::{Abi, Client, Code, Response, WaitOutcome};
//! use std::time::Duration;
//!
//! let mut client = Client::connect("/tmp/faultring.sock")?;
//! let mut queue = client.attach(Abi::V2, &[1, 2, 3, 4])?;
//! loop {
//!     match queue.wait(Duration::from_millis(500))? {
//!         WaitOutcome::Ready => {}
//!         WaitOutcome::TimedOut => continue,
//!         WaitOutcome::Closed | WaitOutcome::ServiceGone => break,
//!     }
//!     let batch = queue.batch()?; // zero-copy views into the ring
//!     for record in batch.iter() {
//!         if let Some(group) = record.group_end()? {
//!             let r = Response::for_group(&group, Code::Success);
//!             batch.push_response_wait(&r, Duration::from_secs(1))?;
//!         }
//!     }
//!     batch.commit()?; // one resp_prod store, at most one doorbell ring
//! } // dropping the batch stores fault_cons (release)
//! # Ok::<(), faultring::Error>(())
//! ```
//!
//! All `unsafe` code is in one private module (`sys`): system calls, the two
//! mappings (accessed only through bounds-checked, aligned atomic words), and
//! the ABI 1 union's bytes.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

pub mod abi;
mod client;
mod error;
pub mod json;
mod nested;
pub mod protocol;
mod queue;
mod record;
mod response;
mod sequence;
#[allow(unsafe_code)]
mod sys;

pub use client::{AttachInfo, Capabilities, Client, ClientOptions};
pub use error::{Error, Result};
pub use nested::{Binding, Invalidation};
pub use queue::{Batch, BatchSummary, Queue, QueueFiles, QueueOptions, WaitOutcome};
pub use record::{GroupEnd, LostRecord, OwnedRecord, Record, V1PageRequest, V1Record, V1Unrecoverable, V2Record};
pub use response::{Code, Response};
pub use sequence::{SequenceEvent, SequenceStats, SequenceTracker};

/// A record ABI (the `abi` of ATTACH and of the producer header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// ABI 1: the kernel's `struct iommu_fault`; one device per queue; no
    /// sequence numbers (loss shows only in `counters.records_lost`).
    V1,
    /// ABI 2: `struct faultring_v2_fault`: device ids, cookies, sequence
    /// numbers and LOST records.
    V2,
}

impl Abi {
    /// The wire value (1 or 2).
    pub fn raw(self) -> u32 {
        match self {
            Abi::V1 => abi::ABI_V1,
            Abi::V2 => abi::ABI_V2,
        }
    }

    /// The ABI for a wire value, if it is 1 or 2.
    pub fn from_raw(v: u32) -> Option<Abi> {
        match v {
            abi::ABI_V1 => Some(Abi::V1),
            abi::ABI_V2 => Some(Abi::V2),
            _ => None,
        }
    }
}
