//! RNode's on-air framing: a packet of up to 508 bytes goes out as one or two LoRa
//! frames, each starting with a 1-byte header.
//!
//! Header bits (RNode `Framing.h`): the upper nibble is a random sequence number
//! (`NIBBLE_SEQ` 0xF0), the lowest bit is `FLAG_SPLIT` (0x01); the other three bits are
//! zero. A packet longer than 254 bytes is split: the first frame carries the header and
//! 254 bytes, the second the same header and the rest. Both halves share the sequence
//! nibble, which is how the receiver pairs them.

use crate::airtime::Modulation;
use core::fmt;

/// The largest packet RNode carries (two frames' worth): `MTU` in RNode's `Config.h`.
pub const MTU: usize = 508;
/// The largest LoRa frame, header included (`SINGLE_MTU`).
pub const SINGLE_MTU: usize = 255;
/// The RNode header in front of every frame (`HEADER_L`).
pub const HEADER_LEN: usize = 1;
/// Packet bytes per frame.
pub const FRAME_DATA: usize = SINGLE_MTU - HEADER_LEN;
/// Header bit: this frame is half of a split packet.
pub const FLAG_SPLIT: u8 = 0x01;
/// Header bits holding the sequence number.
pub const SEQ_MASK: u8 = 0xF0;

/// One LoRa frame (header plus up to 254 bytes).
pub type Frame = heapless::Vec<u8, SINGLE_MTU>;

/// Whether a header marks half of a split packet.
pub const fn is_split(header: u8) -> bool {
    header & FLAG_SPLIT != 0
}

/// The sequence number (0–15) in a header.
pub const fn sequence(header: u8) -> u8 {
    header >> 4
}

/// Why a packet cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// An empty packet (RNode needs at least one byte).
    Empty,
    /// A packet longer than [`MTU`]; carries the length.
    TooLong(usize),
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::Empty => f.write_str("an empty packet cannot be sent"),
            SplitError::TooLong(n) => write!(f, "a {n}-byte packet exceeds the {MTU}-byte MTU"),
        }
    }
}

/// A packet cut into its LoRa frames. Frames are built on demand, so holding a `Split`
/// costs no buffer beyond the packet itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    packet: &'a [u8],
    header: u8,
}

impl<'a> Split<'a> {
    /// Frame `packet`; the sequence nibble comes from the upper four bits of `random`.
    pub fn new(packet: &'a [u8], random: u8) -> Result<Self, SplitError> {
        if packet.is_empty() {
            return Err(SplitError::Empty);
        }
        if packet.len() > MTU {
            return Err(SplitError::TooLong(packet.len()));
        }
        let mut header = random & SEQ_MASK;
        if packet.len() > FRAME_DATA {
            header |= FLAG_SPLIT;
        }
        Ok(Split { packet, header })
    }

    /// The header every frame of this packet starts with.
    pub const fn header(&self) -> u8 {
        self.header
    }

    /// One or two.
    pub const fn frame_count(&self) -> usize {
        if is_split(self.header) {
            2
        } else {
            1
        }
    }

    /// Frame `index` (0 or 1), or `None` past the last one.
    pub fn frame(&self, index: usize) -> Option<Frame> {
        if index >= self.frame_count() {
            return None;
        }
        let start = index * FRAME_DATA;
        let end = (start + FRAME_DATA).min(self.packet.len());
        let chunk = self.packet.get(start..end)?;
        let mut f = Frame::new();
        f.push(self.header).ok()?;
        f.extend_from_slice(chunk).ok()?;
        Some(f)
    }

    /// The length of frame `index`, header included (0 past the last frame).
    pub fn frame_len(&self, index: usize) -> usize {
        if index >= self.frame_count() {
            return 0;
        }
        let start = index * FRAME_DATA;
        HEADER_LEN + self.packet.len().saturating_sub(start).min(FRAME_DATA)
    }

    /// All frames in order.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        (0..self.frame_count()).filter_map(|i| self.frame(i))
    }
}

/// Time on air of a whole packet as RNode frames it (one or two frames, each with its
/// header), in microseconds. Zero for a packet that cannot be framed.
pub fn packet_airtime_us(modulation: &Modulation, packet_len: usize) -> u64 {
    if packet_len == 0 || packet_len > MTU {
        return 0;
    }
    if packet_len > FRAME_DATA {
        modulation.airtime_us(SINGLE_MTU)
            + modulation.airtime_us(HEADER_LEN + packet_len - FRAME_DATA)
    } else {
        modulation.airtime_us(HEADER_LEN + packet_len)
    }
}

/// What became of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// A whole packet, ready for the host.
    Packet(&'a [u8]),
    /// The first half of a split packet, held until its partner arrives.
    Pending,
    /// The frame was discarded.
    Dropped(DropReason),
}

/// Why a received frame was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No packet bytes (an empty frame, or a header alone).
    Empty,
    /// A second half whose first half never arrived (too short to be a first half and
    /// no pending half with its sequence).
    Orphan,
    /// A repeat of the first half already held.
    Duplicate,
    /// Longer than a LoRa frame can be.
    TooLong,
}

/// Joins split packets back together.
///
/// Follows RNode's receive logic: a split frame while nothing is pending starts a packet;
/// a split frame with the pending sequence completes it; a split frame with another
/// sequence starts over; an unsplit frame is delivered as is and abandons any pending
/// half. Two checks make it stricter than the firmware, so a lost half never glues two
/// unrelated halves together: a first half must be full (254 bytes, as every sender
/// cuts there), and a byte-identical repeat of the held half is dropped as a duplicate.
#[derive(Debug, Clone, Default)]
pub struct Reassembler {
    buf: heapless::Vec<u8, MTU>,
    pending: Option<u8>,
    /// Pending first halves abandoned because their partner never came.
    pub abandoned: u32,
    /// Frames dropped (any [`DropReason`]).
    pub dropped: u32,
}

impl Reassembler {
    /// An empty reassembler.
    pub const fn new() -> Self {
        Reassembler {
            buf: heapless::Vec::new(),
            pending: None,
            abandoned: 0,
            dropped: 0,
        }
    }

    /// Whether a first half is waiting for its partner.
    pub const fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Forget any pending half.
    pub fn clear(&mut self) {
        if self.pending.take().is_some() {
            self.abandoned = self.abandoned.saturating_add(1);
        }
        self.buf.clear();
    }

    fn drop_frame(&mut self, reason: DropReason) -> Received<'_> {
        self.dropped = self.dropped.saturating_add(1);
        Received::Dropped(reason)
    }

    /// Take one received LoRa frame (header included).
    #[must_use]
    pub fn push(&mut self, frame: &[u8]) -> Received<'_> {
        let Some((&header, data)) = frame.split_first() else {
            return self.drop_frame(DropReason::Empty);
        };
        if frame.len() > SINGLE_MTU {
            return self.drop_frame(DropReason::TooLong);
        }
        if !is_split(header) {
            if data.is_empty() {
                return self.drop_frame(DropReason::Empty);
            }
            self.clear();
            // Cannot fail: data is at most 254 bytes.
            let _ = self.buf.extend_from_slice(data);
            return Received::Packet(&self.buf);
        }
        let seq = sequence(header);
        if self.pending == Some(seq) {
            if data.is_empty() {
                return self.drop_frame(DropReason::Empty);
            }
            if data == self.buf.as_slice() {
                return self.drop_frame(DropReason::Duplicate);
            }
            if self.buf.extend_from_slice(data).is_err() {
                self.clear();
                return self.drop_frame(DropReason::TooLong);
            }
            self.pending = None;
            return Received::Packet(&self.buf);
        }
        if data.len() != FRAME_DATA {
            return self.drop_frame(DropReason::Orphan);
        }
        self.clear();
        let _ = self.buf.extend_from_slice(data);
        self.pending = Some(seq);
        Received::Pending
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn packet(len: usize, salt: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
            .collect()
    }

    #[test]
    fn short_packet_is_one_frame_with_sequence_in_the_upper_nibble() {
        let p = packet(254, 1);
        let s = Split::new(&p, 0xA7).unwrap();
        assert_eq!(s.header(), 0xA0, "low bits of the random byte are not used");
        assert_eq!(s.frame_count(), 1);
        let f = s.frame(0).unwrap();
        assert_eq!(f.len(), 255);
        assert_eq!(f[0], 0xA0);
        assert_eq!(&f[1..], &p[..]);
        assert!(s.frame(1).is_none());
    }

    #[test]
    fn long_packet_is_two_frames_sharing_a_split_header() {
        let p = packet(500, 2);
        let s = Split::new(&p, 0x3C).unwrap();
        assert_eq!(s.header(), 0x31);
        let frames: Vec<Frame> = s.frames().collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].len(), 255);
        assert_eq!(frames[1].len(), 1 + 246);
        assert_eq!(s.frame_len(0), 255);
        assert_eq!(s.frame_len(1), 247);
        assert_eq!(frames[1][0], 0x31);
        assert_eq!(&frames[0][1..], &p[..254]);
        assert_eq!(&frames[1][1..], &p[254..]);
        // 255 bytes is the shortest split: a 1-byte second half.
        assert_eq!(Split::new(&packet(255, 0), 0).unwrap().frame_len(1), 2);
    }

    #[test]
    fn limits() {
        assert_eq!(Split::new(&[], 0), Err(SplitError::Empty));
        assert_eq!(
            Split::new(&packet(509, 0), 0),
            Err(SplitError::TooLong(509))
        );
        assert!(Split::new(&packet(508, 0), 0).is_ok());
    }

    #[test]
    fn packet_airtime_matches_the_500_byte_row() {
        // Full 500 B packet, two frames, 8-symbol preamble, 125 kHz, CR 4/5.
        let want = [789, 1394, 2480, 4510, 9839, 17875];
        for (sf, w) in (7u8..=12).zip(want) {
            let m = Modulation::new(sf, 125_000, 5).unwrap();
            assert_eq!((packet_airtime_us(&m, 500) + 500) / 1000, w, "SF{sf}");
        }
        let m = Modulation::new(7, 125_000, 5).unwrap();
        assert_eq!(packet_airtime_us(&m, 0), 0);
        assert_eq!(packet_airtime_us(&m, 20), m.airtime_us(21));
    }

    #[test]
    fn joins_halves_with_matching_sequence_only() {
        let a = packet(400, 3);
        let b = packet(300, 4);
        let fa: Vec<Frame> = Split::new(&a, 0x10).unwrap().frames().collect();
        let fb: Vec<Frame> = Split::new(&b, 0x20).unwrap().frames().collect();
        let mut r = Reassembler::new();
        assert_eq!(r.push(&fa[0]), Received::Pending);
        // b's first half replaces a's (a is abandoned) …
        assert_eq!(r.push(&fb[0]), Received::Pending);
        assert_eq!(r.abandoned, 1);
        // … so a's second half is an orphan, and b still completes.
        assert_eq!(r.push(&fa[1]), Received::Dropped(DropReason::Orphan));
        assert_eq!(r.push(&fb[1]), Received::Packet(&b[..]));
        assert!(!r.is_pending());
    }

    #[test]
    fn drops_orphans_duplicates_and_empty_frames() {
        let a = packet(450, 5);
        let fa: Vec<Frame> = Split::new(&a, 0x50).unwrap().frames().collect();
        let mut r = Reassembler::new();
        assert_eq!(r.push(&fa[1]), Received::Dropped(DropReason::Orphan));
        assert_eq!(r.push(&fa[0]), Received::Pending);
        assert_eq!(r.push(&fa[0]), Received::Dropped(DropReason::Duplicate));
        assert_eq!(r.push(&fa[1]), Received::Packet(&a[..]));
        // A repeat of the second half after completion is an orphan.
        assert_eq!(r.push(&fa[1]), Received::Dropped(DropReason::Orphan));
        assert_eq!(r.push(&[]), Received::Dropped(DropReason::Empty));
        assert_eq!(r.push(&[0x00]), Received::Dropped(DropReason::Empty));
        assert_eq!(r.push(&[0u8; 256]), Received::Dropped(DropReason::TooLong));
        assert_eq!(r.dropped, 6);
    }

    #[test]
    fn an_unsplit_frame_abandons_a_pending_half() {
        let a = packet(300, 6);
        let fa: Vec<Frame> = Split::new(&a, 0x70).unwrap().frames().collect();
        let mut r = Reassembler::new();
        assert_eq!(r.push(&fa[0]), Received::Pending);
        assert_eq!(r.push(&[0x70, 9, 9]), Received::Packet(&[9, 9]));
        assert_eq!(r.abandoned, 1);
        assert_eq!(r.push(&fa[1]), Received::Dropped(DropReason::Orphan));
    }

    proptest! {
        #[test]
        fn round_trip(len in 1usize..=MTU, salt in any::<u8>(), random in any::<u8>()) {
            let p = packet(len, salt);
            let s = Split::new(&p, random).unwrap();
            let mut r = Reassembler::new();
            let mut out = None;
            for f in s.frames() {
                prop_assert!(f.len() <= SINGLE_MTU);
                if let Received::Packet(got) = r.push(&f) {
                    out = Some(got.to_vec());
                }
            }
            prop_assert_eq!(out, Some(p));
        }

        #[test]
        fn never_panics(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut r = Reassembler::new();
            for f in &frames {
                if let Received::Packet(p) = r.push(f) {
                    prop_assert!(!p.is_empty() && p.len() <= MTU);
                }
            }
        }
    }
}
