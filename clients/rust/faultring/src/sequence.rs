//! ABI 2 sequence-number and LOST-record accounting (ABI.md section 7).
//!
//! Every record's sequence is the previous one plus 1, except a LOST record's,
//! which is the previous plus 1 plus its `lost_records`; the first record's is
//! 0; everything wraps at 2^32. [`SequenceTracker`] applies that rule to every
//! record a [`crate::Queue`] hands out and counts what does not fit. All
//! arithmetic is wrapping or saturating: no value from shared memory can make
//! it panic.

/// Totals since the queue was attached. Books (ABI.md section 7), checkable
/// against the producer's counters:
///
/// * `data_records + lost_records_seen` = `counters.records_published`;
/// * `reported_lost` = `counters.records_lost` (once every LOST record owed has
///   been written) = the last LOST record's `total_lost`;
/// * `next_sequence` = `records_published + records_lost` (mod 2^32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceStats {
    /// Data records seen (not LOST records).
    pub data_records: u64,
    /// LOST records seen.
    pub lost_records_seen: u64,
    /// Sum of the `lost_records` of the LOST records seen.
    pub reported_lost: u64,
    /// `total_lost` of the last LOST record seen.
    pub last_total_lost: u64,
    /// Forward jumps of the sequence that no LOST record explains.
    pub gaps: u64,
    /// Sequence numbers skipped by those gaps.
    pub missing: u64,
    /// Records whose sequence went backwards (or jumped by 2^31 or more).
    pub backwards: u64,
    /// LOST records that contradict themselves or the books: `sequence` !=
    /// `first_lost_sequence + lost_records`, or `total_lost` != the sum of
    /// the `lost_records` seen.
    pub lost_inconsistent: u64,
    /// The sequence number the next record should carry.
    pub next_sequence: u32,
}

/// A discontinuity found in one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceEvent {
    /// The record's sequence (or a LOST record's `first_lost_sequence`) is
    /// `expected + missing`: `missing` records vanished without a LOST record.
    Gap {
        /// What the record should have carried.
        expected: u32,
        /// What it carried.
        got: u32,
        /// How many numbers were skipped.
        missing: u32,
    },
    /// The sequence went backwards (or jumped by at least 2^31).
    Backwards {
        /// What the record should have carried.
        expected: u32,
        /// What it carried.
        got: u32,
    },
    /// A LOST record contradicts itself or the books.
    LostInconsistent {
        /// The LOST record's `sequence`.
        sequence: u32,
        /// Its `first_lost_sequence`.
        first_lost_sequence: u32,
        /// Its `lost_records`.
        lost_records: u64,
        /// Its `total_lost`.
        total_lost: u64,
    },
}

/// Applies the sequence rule to a stream of ABI 2 records.
#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    stats: SequenceStats,
}

impl SequenceTracker {
    /// A tracker expecting sequence 0 first.
    pub fn new() -> SequenceTracker {
        SequenceTracker::default()
    }

    /// Totals so far.
    pub fn stats(&self) -> SequenceStats {
        self.stats
    }

    fn check(&mut self, got: u32) -> Option<SequenceEvent> {
        let expected = self.stats.next_sequence;
        if got == expected {
            return None;
        }
        let d = got.wrapping_sub(expected);
        if d < 1 << 31 {
            self.stats.gaps = self.stats.gaps.saturating_add(1);
            self.stats.missing = self.stats.missing.saturating_add(d.into());
            Some(SequenceEvent::Gap { expected, got, missing: d })
        } else {
            self.stats.backwards = self.stats.backwards.saturating_add(1);
            Some(SequenceEvent::Backwards { expected, got })
        }
    }

    /// A data record (`DMA_UNRECOV`, `PAGE_REQ`, or an unknown type) with `sequence`.
    pub fn observe_data(&mut self, sequence: u32) -> Option<SequenceEvent> {
        let ev = self.check(sequence);
        self.stats.data_records = self.stats.data_records.saturating_add(1);
        self.stats.next_sequence = sequence.wrapping_add(1);
        ev
    }

    /// A LOST record. Returns up to two events: a gap before the loss it
    /// reports (its `first_lost_sequence` is not the expected number), and an
    /// inconsistency of the record itself.
    pub fn observe_lost(
        &mut self,
        sequence: u32,
        lost_records: u64,
        first_lost_sequence: u32,
        total_lost: u64,
    ) -> [Option<SequenceEvent>; 2] {
        let gap = self.check(first_lost_sequence);
        let s = &mut self.stats;
        s.lost_records_seen = s.lost_records_seen.saturating_add(1);
        s.reported_lost = s.reported_lost.saturating_add(lost_records);
        s.last_total_lost = total_lost;
        // Sequences are mod 2^32, so only the low 32 bits of the count matter.
        let own_ok = sequence == first_lost_sequence.wrapping_add(lost_records as u32);
        let books_ok = total_lost == s.reported_lost;
        let bad = if own_ok && books_ok {
            None
        } else {
            s.lost_inconsistent = s.lost_inconsistent.saturating_add(1);
            Some(SequenceEvent::LostInconsistent { sequence, first_lost_sequence, lost_records, total_lost })
        };
        s.next_sequence = sequence.wrapping_add(1);
        [gap, bad]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_events() {
        let mut t = SequenceTracker::new();
        for s in 0..100 {
            assert_eq!(t.observe_data(s), None);
        }
        let st = t.stats();
        assert_eq!((st.data_records, st.gaps, st.next_sequence), (100, 0, 100));
    }

    #[test]
    fn lost_record_explains_its_gap() {
        // Records 0..=4, then 3 dropped (5, 6, 7), LOST takes 8, then 9.
        let mut t = SequenceTracker::new();
        for s in 0..5 {
            assert_eq!(t.observe_data(s), None);
        }
        assert_eq!(t.observe_lost(8, 3, 5, 3), [None, None]);
        assert_eq!(t.observe_data(9), None);
        let st = t.stats();
        assert_eq!(st.data_records, 6);
        assert_eq!(st.lost_records_seen, 1);
        assert_eq!(st.reported_lost, 3);
        assert_eq!(st.last_total_lost, 3);
        assert_eq!((st.gaps, st.missing, st.lost_inconsistent), (0, 0, 0));
        // Books: published (6 data + 1 LOST) + lost (3) = next sequence (10).
        assert_eq!(st.data_records + st.lost_records_seen + st.reported_lost, u64::from(st.next_sequence));
    }

    #[test]
    fn unexplained_gap_is_counted() {
        let mut t = SequenceTracker::new();
        t.observe_data(0);
        assert_eq!(t.observe_data(4), Some(SequenceEvent::Gap { expected: 1, got: 4, missing: 3 }));
        assert_eq!(t.observe_data(5), None);
        let st = t.stats();
        assert_eq!((st.gaps, st.missing), (1, 3));
    }

    #[test]
    fn gap_before_a_lost_record_is_counted() {
        let mut t = SequenceTracker::new();
        t.observe_data(0);
        // Expected first_lost_sequence 1, got 3: two records vanished unreported.
        let ev = t.observe_lost(5, 2, 3, 2);
        assert_eq!(ev[0], Some(SequenceEvent::Gap { expected: 1, got: 3, missing: 2 }));
        assert_eq!(ev[1], None);
        assert_eq!(t.observe_data(6), None);
    }

    #[test]
    fn inconsistent_lost_records() {
        let mut t = SequenceTracker::new();
        // Own sequence wrong: 0 + 4 should be 4.
        assert!(matches!(t.observe_lost(7, 4, 0, 4)[1], Some(SequenceEvent::LostInconsistent { .. })));
        // total_lost disagrees with the sum (4 + 1 = 5, says 9).
        assert!(matches!(t.observe_lost(9, 1, 8, 9)[1], Some(SequenceEvent::LostInconsistent { .. })));
        assert_eq!(t.stats().lost_inconsistent, 2);
    }

    #[test]
    fn wraps_at_2_pow_32() {
        let mut t = SequenceTracker::new();
        t.stats.next_sequence = u32::MAX - 1;
        assert_eq!(t.observe_data(u32::MAX - 1), None);
        assert_eq!(t.observe_data(u32::MAX), None);
        assert_eq!(t.observe_data(0), None);
        // A LOST record straddling the wrap: first lost 1, 2^32 - 1 + ... keep it small.
        assert_eq!(t.observe_lost(3, 2, 1, 2), [None, None]);
        assert_eq!(t.stats().next_sequence, 4);
        // A huge lost_records count only matters mod 2^32 for the sequence.
        let mut t = SequenceTracker::new();
        let lost = (1u64 << 32) + 5;
        assert_eq!(t.observe_lost(5, lost, 0, lost), [None, None]);
    }

    #[test]
    fn backwards_is_not_a_gap() {
        let mut t = SequenceTracker::new();
        for s in 0..10 {
            t.observe_data(s);
        }
        assert_eq!(t.observe_data(3), Some(SequenceEvent::Backwards { expected: 10, got: 3 }));
        let st = t.stats();
        assert_eq!((st.gaps, st.backwards), (0, 1));
        // Hostile extremes never panic.
        t.observe_lost(u32::MAX, u64::MAX, u32::MAX, u64::MAX);
        t.observe_lost(0, u64::MAX, 0, 0);
        t.observe_data(u32::MAX);
    }
}
