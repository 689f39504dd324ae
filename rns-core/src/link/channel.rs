//! Channel: reliable, ordered messages in both directions over a link (RNS `Channel`).
//!
//! Each message travels in one CHANNEL-context link packet as an *envelope*; the receiver
//! proves every packet, and the sender retransmits unproven ones (re-encrypted, so under a
//! new packet hash) with a growing timeout, tearing the link down after [`MAX_TRIES`]. The
//! send window grows and shrinks with the link's RTT as RNS's does, and the receiver
//! delivers messages in sequence order, holding at most [`WINDOW_MAX`] out-of-order ones.
//!
//! This module holds the envelope codec and the sequencing/windowing state; the [`Link`]
//! encrypts, sends and proves.
//!
//! [`Link`]: super::Link

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::hash::FULL_HASH_LEN;
use crate::time::Instant;

/// Envelope header: message type, sequence and payload length, each a big-endian u16.
pub const ENVELOPE_HEADER_LEN: usize = 6;
/// Message types from here up are reserved for the system (RNS uses `0xFF00` for Buffer).
pub const SYSTEM_MSGTYPE_MIN: u16 = 0xF000;
/// Sends of one message before the link is torn down.
pub const MAX_TRIES: u8 = 5;
/// The largest window, and how far ahead of the next expected sequence a message may be.
pub const WINDOW_MAX: u16 = 48;

const WINDOW: u16 = 2;
const WINDOW_MIN: u16 = 2;
const WINDOW_MIN_LIMIT_MEDIUM: u16 = 5;
const WINDOW_MIN_LIMIT_FAST: u16 = 16;
const WINDOW_MAX_SLOW: u16 = 5;
const WINDOW_MAX_MEDIUM: u16 = 12;
const WINDOW_MAX_FAST: u16 = 48;
const WINDOW_FLEXIBILITY: u16 = 4;
/// Consecutive deliveries at a rate class before the window may grow into it.
const FAST_RATE_THRESHOLD: u32 = 10;
const RTT_FAST: Duration = Duration::from_millis(180);
const RTT_MEDIUM: Duration = Duration::from_millis(750);
const RTT_SLOW: Duration = Duration::from_millis(1450);
/// The shortest per-try timeout base.
const TIMEOUT_FLOOR: Duration = Duration::from_millis(25);

// Envelope byte ranges.
const MSGTYPE: core::ops::Range<usize> = 0..2;
const SEQUENCE: core::ops::Range<usize> = 2..4;
const LENGTH: core::ops::Range<usize> = 4..6;

/// Why an envelope could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than its header or its declared payload.
    #[error("channel envelope truncated: {have} bytes, need {need}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header promises.
        need: usize,
    },
}

/// A channel message on the wire: `msgtype ‖ sequence ‖ length ‖ payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The application's message type (below [`SYSTEM_MSGTYPE_MIN`] unless a system type).
    pub msgtype: u16,
    /// Sequence number, wrapping at 2^16.
    pub sequence: u16,
    /// The packed message.
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parse an envelope; bytes past the declared length are ignored.
    pub fn parse(raw: &'a [u8]) -> Result<Self, EnvelopeError> {
        let u16_at = |r: core::ops::Range<usize>| {
            raw.get(r)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(EnvelopeError::Truncated {
                    have: raw.len(),
                    need: ENVELOPE_HEADER_LEN,
                })
        };
        let msgtype = u16_at(MSGTYPE)?;
        let sequence = u16_at(SEQUENCE)?;
        let len = usize::from(u16_at(LENGTH)?);
        let payload = raw
            .get(ENVELOPE_HEADER_LEN..ENVELOPE_HEADER_LEN + len)
            .ok_or(EnvelopeError::Truncated {
                have: raw.len(),
                need: ENVELOPE_HEADER_LEN + len,
            })?;
        Ok(Envelope {
            msgtype,
            sequence,
            payload,
        })
    }

    /// Emit the envelope. The payload must be at most 65535 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = u16::try_from(self.payload.len()).expect("payload length checked by caller");
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.msgtype.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }
}

/// A message sent and not yet proven.
#[derive(Debug)]
struct Outstanding {
    sequence: u16,
    /// The envelope, kept to re-encrypt on retransmission.
    envelope: Vec<u8>,
    /// Hash of the packet that carries it now (changes on every retransmission).
    packet_hash: [u8; FULL_HASH_LEN],
    tries: u8,
    sent_at: Instant,
    timeout: Duration,
}

/// What a timer run asks the link to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TimerAction {
    /// Re-encrypt and send these envelopes, then report their new hashes with
    /// [`Channel::resent`].
    Resend(Vec<(u16, Vec<u8>)>),
    /// A message went unproven [`MAX_TRIES`] times: tear the link down.
    Teardown,
}

/// Sequencing and windowing state of one link's channel.
#[derive(Debug)]
pub(super) struct Channel {
    tx: VecDeque<Outstanding>,
    /// Received out of order, by sequence, waiting for the gap to fill.
    rx: HashMap<u16, (u16, Vec<u8>)>,
    next_tx: u16,
    next_rx: u16,
    window: u16,
    window_max: u16,
    window_min: u16,
    window_flexibility: u16,
    fast_rounds: u32,
    medium_rounds: u32,
}

impl Channel {
    /// A channel on a link whose RTT is `rtt`: very slow links send one message at a time.
    pub(super) fn new(rtt: Duration) -> Self {
        let (window, window_max, window_min, window_flexibility) = if rtt > RTT_SLOW {
            (1, 1, 1, 1)
        } else {
            (WINDOW, WINDOW_MAX_SLOW, WINDOW_MIN, WINDOW_FLEXIBILITY)
        };
        Channel {
            tx: VecDeque::new(),
            rx: HashMap::new(),
            next_tx: 0,
            next_rx: 0,
            window,
            window_max,
            window_min,
            window_flexibility,
            fast_rounds: 0,
            medium_rounds: 0,
        }
    }

    /// Whether another message may be sent now.
    pub(super) fn ready(&self) -> bool {
        self.tx.len() < usize::from(self.window)
    }

    /// The current send window.
    pub(super) fn window(&self) -> u16 {
        self.window
    }

    /// Messages sent and not yet proven.
    #[cfg(test)]
    pub(super) fn outstanding(&self) -> usize {
        self.tx.len()
    }

    /// Reserve the next sequence number and build its envelope. Call [`Channel::sent`]
    /// once the packet is built.
    pub(super) fn next_envelope(&mut self, msgtype: u16, payload: &[u8]) -> (u16, Vec<u8>) {
        let sequence = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1);
        let env = Envelope {
            msgtype,
            sequence,
            payload,
        }
        .to_bytes();
        (sequence, env)
    }

    fn timeout_for(&self, tries: u8, rtt: Duration) -> Duration {
        let base = (rtt.mul_f64(2.5)).max(TIMEOUT_FLOOR);
        base.mul_f64(1.5f64.powi(i32::from(tries) - 1) * (self.tx.len() as f64 + 1.5))
    }

    /// Longer rings mean longer queues: stretch every outstanding timeout to match (never shrink).
    fn stretch_timeouts(&mut self, rtt: Duration) {
        let len = self.tx.len();
        for i in 0..len {
            let t = self.timeout_for(self.tx[i].tries, rtt);
            let o = &mut self.tx[i];
            o.timeout = o.timeout.max(t);
        }
    }

    /// Track a message that went out in the packet `packet_hash`.
    pub(super) fn sent(
        &mut self,
        sequence: u16,
        envelope: Vec<u8>,
        packet_hash: [u8; FULL_HASH_LEN],
        now: Instant,
        rtt: Duration,
    ) {
        self.tx.push_back(Outstanding {
            sequence,
            envelope,
            packet_hash,
            tries: 1,
            sent_at: now,
            timeout: Duration::ZERO,
        });
        self.stretch_timeouts(rtt);
    }

    /// Whether `packet_hash` carries a message awaiting proof.
    pub(super) fn awaits(&self, packet_hash: &[u8; FULL_HASH_LEN]) -> bool {
        self.tx.iter().any(|o| o.packet_hash == *packet_hash)
    }

    /// A (verified) proof arrived for `packet_hash`: the message is delivered and the window
    /// grows. Returns its sequence.
    pub(super) fn proven(
        &mut self,
        packet_hash: &[u8; FULL_HASH_LEN],
        rtt: Duration,
    ) -> Option<u16> {
        let i = self.tx.iter().position(|o| o.packet_hash == *packet_hash)?;
        let o = self.tx.remove(i)?;
        if self.window < self.window_max {
            self.window += 1;
        }
        if !rtt.is_zero() {
            if rtt > RTT_FAST {
                self.fast_rounds = 0;
                if rtt > RTT_MEDIUM {
                    self.medium_rounds = 0;
                } else {
                    self.medium_rounds += 1;
                    if self.window_max < WINDOW_MAX_MEDIUM
                        && self.medium_rounds == FAST_RATE_THRESHOLD
                    {
                        self.window_max = WINDOW_MAX_MEDIUM;
                        self.window_min = WINDOW_MIN_LIMIT_MEDIUM;
                    }
                }
            } else {
                self.fast_rounds += 1;
                if self.window_max < WINDOW_MAX_FAST && self.fast_rounds == FAST_RATE_THRESHOLD {
                    self.window_max = WINDOW_MAX_FAST;
                    self.window_min = WINDOW_MIN_LIMIT_FAST;
                }
            }
        }
        Some(o.sequence)
    }

    /// When the earliest outstanding message times out.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.tx.iter().map(|o| o.sent_at + o.timeout).min()
    }

    /// Retransmit what timed out (shrinking the window), or give up.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        let due: Vec<usize> = (0..self.tx.len())
            .filter(|&i| now >= self.tx[i].sent_at + self.tx[i].timeout)
            .collect();
        if due.is_empty() {
            return None;
        }
        if due.iter().any(|&i| self.tx[i].tries >= MAX_TRIES) {
            self.tx.clear();
            self.rx.clear();
            return Some(TimerAction::Teardown);
        }
        let mut resend = Vec::with_capacity(due.len());
        for i in due {
            let o = &mut self.tx[i];
            o.tries += 1;
            resend.push((o.sequence, o.envelope.clone()));
            if self.window > self.window_min {
                self.window -= 1;
                if self.window_max > self.window_min + self.window_flexibility {
                    self.window_max -= 1;
                }
            }
        }
        Some(TimerAction::Resend(resend))
    }

    /// A retransmission of `sequence` went out as `packet_hash`.
    pub(super) fn resent(
        &mut self,
        sequence: u16,
        packet_hash: [u8; FULL_HASH_LEN],
        now: Instant,
        rtt: Duration,
    ) {
        let Some(i) = self.tx.iter().position(|o| o.sequence == sequence) else {
            return;
        };
        let timeout = self.timeout_for(self.tx[i].tries, rtt);
        let o = &mut self.tx[i];
        o.packet_hash = packet_hash;
        o.sent_at = now;
        o.timeout = timeout;
        self.stretch_timeouts(rtt);
    }

    /// An envelope arrived. Returns the messages now deliverable in order
    /// (`(msgtype, sequence, payload)`); duplicates and out-of-window ones yield nothing.
    pub(super) fn receive(&mut self, env: Envelope<'_>) -> Vec<(u16, u16, Vec<u8>)> {
        let ahead = env.sequence.wrapping_sub(self.next_rx);
        if ahead > WINDOW_MAX || self.rx.contains_key(&env.sequence) {
            return Vec::new();
        }
        self.rx
            .insert(env.sequence, (env.msgtype, env.payload.to_vec()));
        let mut ready = Vec::new();
        while let Some((msgtype, payload)) = self.rx.remove(&self.next_rx) {
            ready.push((msgtype, self.next_rx, payload));
            self.next_rx = self.next_rx.wrapping_add(1);
        }
        ready
    }

    /// Forget everything (the link closed).
    pub(super) fn clear(&mut self) {
        self.tx.clear();
        self.rx.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn envelope_round_trip_and_layout() {
        let raw = Envelope {
            msgtype: 0xABCD,
            sequence: 0x0102,
            payload: b"hello",
        }
        .to_bytes();
        assert_eq!(&raw[..6], &[0xAB, 0xCD, 0x01, 0x02, 0x00, 0x05]);
        let e = Envelope::parse(&raw).unwrap();
        assert_eq!(
            (e.msgtype, e.sequence, e.payload),
            (0xABCD, 0x0102, &b"hello"[..])
        );
        assert!(matches!(
            Envelope::parse(&raw[..8]),
            Err(EnvelopeError::Truncated { have: 8, need: 11 })
        ));
        assert!(Envelope::parse(&raw[..5]).is_err());
    }

    #[test]
    fn delivers_in_order_across_gaps_and_drops_duplicates() {
        let mut c = Channel::new(Duration::from_millis(10));
        let env = |s: u16, p: &'static [u8]| Envelope {
            msgtype: 1,
            sequence: s,
            payload: p,
        };
        assert!(c.receive(env(1, b"b")).is_empty());
        assert!(c.receive(env(2, b"c")).is_empty());
        assert!(c.receive(env(2, b"c")).is_empty(), "duplicate held once");
        let got: Vec<u16> = c.receive(env(0, b"a")).iter().map(|m| m.1).collect();
        assert_eq!(got, vec![0, 1, 2]);
        assert!(c.receive(env(1, b"b")).is_empty(), "already delivered");
        assert!(
            c.receive(env(3 + WINDOW_MAX + 1, b"x")).is_empty(),
            "beyond window"
        );
        assert_eq!(c.receive(env(3, b"d")).len(), 1);
    }

    #[test]
    fn sequence_wraps() {
        let mut c = Channel::new(Duration::from_millis(10));
        c.next_rx = 0xFFFF;
        let env = |s: u16| Envelope {
            msgtype: 1,
            sequence: s,
            payload: b"",
        };
        assert!(c.receive(env(0)).is_empty());
        let got: Vec<u16> = c.receive(env(0xFFFF)).iter().map(|m| m.1).collect();
        assert_eq!(got, vec![0xFFFF, 0]);
        c.next_tx = 0xFFFF;
        assert_eq!(c.next_envelope(1, b"").0, 0xFFFF);
        assert_eq!(c.next_envelope(1, b"").0, 0);
    }

    #[test]
    fn window_grows_with_fast_proofs_and_shrinks_on_timeouts() {
        let rtt = Duration::from_millis(5);
        let mut c = Channel::new(rtt);
        let now = Instant::from_secs(100);
        assert_eq!(c.window(), 2);
        for i in 0..40u8 {
            let (seq, env) = c.next_envelope(7, b"x");
            c.sent(seq, env, h(i), now, rtt);
            assert_eq!(c.proven(&h(i), rtt), Some(seq));
        }
        // 2→5 in three proofs, the fast maximum after ten, then one step per proof.
        assert_eq!(c.window(), 35, "fast link opens towards the fast window");
        // Fill the window, let everything time out: each retransmission shrinks it.
        while c.ready() {
            let (seq, env) = c.next_envelope(7, b"x");
            c.sent(seq, env, h(200), now, rtt);
        }
        let Some(TimerAction::Resend(r)) = c.handle_timeout(now + Duration::from_secs(60)) else {
            panic!("expected retransmissions");
        };
        assert_eq!(r.len(), 35);
        assert_eq!(c.window(), 16, "shrinks to the fast minimum");
    }

    #[test]
    fn gives_up_after_max_tries() {
        let rtt = Duration::from_millis(5);
        let mut c = Channel::new(rtt);
        let mut now = Instant::from_secs(100);
        let (seq, env) = c.next_envelope(7, b"x");
        c.sent(seq, env, h(1), now, rtt);
        for n in 2..=MAX_TRIES {
            now = c.poll_timeout().unwrap();
            match c.handle_timeout(now) {
                Some(TimerAction::Resend(r)) => assert_eq!(r[0].0, seq),
                other => panic!("try {n}: {other:?}"),
            }
            c.resent(seq, h(n), now, rtt);
            assert!(c.awaits(&h(n)) && !c.awaits(&h(n - 1)));
        }
        now = c.poll_timeout().unwrap();
        assert_eq!(c.handle_timeout(now), Some(TimerAction::Teardown));
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn slow_links_send_one_at_a_time() {
        let c = Channel::new(Duration::from_secs(2));
        assert_eq!(c.window(), 1);
    }
}
