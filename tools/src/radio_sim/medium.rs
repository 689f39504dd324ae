//! The shared air of the virtual radios: who hears whom, frames occupying the channel
//! for their airtime, collisions and random loss.
//!
//! Time is in milliseconds from the simulation's start, passed in by the caller, so the
//! rules are testable without a clock.

use std::collections::VecDeque;

/// Who hears whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Everyone hears everyone.
    Full,
    /// Radio i hears only i−1 and i+1.
    Line,
}

impl Topology {
    /// Whether `rx` hears `tx`.
    pub fn hears(self, rx: usize, tx: usize) -> bool {
        rx != tx
            && match self {
                Topology::Full => true,
                Topology::Line => rx.abs_diff(tx) == 1,
            }
    }
}

/// One frame on the air.
#[derive(Debug, Clone)]
struct Transmission {
    from: usize,
    start_ms: u64,
    end_ms: u64,
    /// The radio channel (frequency, bandwidth, SF, CR): only identical settings hear
    /// each other.
    channel: u64,
    frame: Vec<u8>,
    /// Receivers for which an overlapping frame spoiled this one.
    collided: Vec<bool>,
}

/// A frame a radio received whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The receiving radio.
    pub to: usize,
    /// The frame.
    pub frame: Vec<u8>,
    /// When it finished arriving.
    pub at_ms: u64,
}

/// Counters for the simulation's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediumStats {
    /// Frames put on the air.
    pub transmitted: u64,
    /// Frames received whole.
    pub delivered: u64,
    /// Receptions spoiled by an overlapping frame.
    pub collisions: u64,
    /// Receptions dropped by the loss rate.
    pub lost: u64,
}

/// The channel shared by `n` radios.
#[derive(Debug)]
pub struct Medium {
    n: usize,
    topology: Topology,
    /// Probability in [0, 1) that a reception is lost.
    loss: f64,
    on_air: VecDeque<Transmission>,
    /// Total airtime each radio has used, ms.
    pub airtime_ms: Vec<u64>,
    /// Counters.
    pub stats: MediumStats,
}

impl Medium {
    /// A quiet channel.
    pub fn new(n: usize, topology: Topology, loss: f64) -> Medium {
        Medium {
            n,
            topology,
            loss: loss.clamp(0.0, 1.0),
            on_air: VecDeque::new(),
            airtime_ms: vec![0; n],
            stats: MediumStats::default(),
        }
    }

    /// Whether `radio` hears a carrier at `now` (for listen-before-talk).
    pub fn busy_for(&self, radio: usize, now_ms: u64) -> bool {
        self.on_air.iter().any(|t| {
            t.start_ms <= now_ms && now_ms < t.end_ms && self.topology.hears(radio, t.from)
        })
    }

    /// Whether `radio` is itself transmitting at `now`.
    pub fn transmitting(&self, radio: usize, now_ms: u64) -> bool {
        self.on_air
            .iter()
            .any(|t| t.from == radio && t.start_ms <= now_ms && now_ms < t.end_ms)
    }

    /// Put a frame on the air from `from`, lasting `airtime_ms`. Frames that overlap it
    /// at a receiver that hears both collide there (both are lost at that receiver).
    pub fn transmit(
        &mut self,
        from: usize,
        channel: u64,
        frame: &[u8],
        now_ms: u64,
        airtime_ms: u64,
    ) {
        let end_ms = now_ms + airtime_ms.max(1);
        let mut collided = vec![false; self.n];
        for other in self.on_air.iter_mut() {
            if other.end_ms <= now_ms {
                continue;
            }
            // Half duplex: neither transmitter hears the other's frame.
            other.collided[from] = true;
            collided[other.from] = true;
            if other.channel != channel {
                continue;
            }
            for (rx, spoiled) in collided.iter_mut().enumerate() {
                if self.topology.hears(rx, from) && self.topology.hears(rx, other.from) {
                    *spoiled = true;
                    other.collided[rx] = true;
                }
            }
        }
        self.on_air.push_back(Transmission {
            from,
            start_ms: now_ms,
            end_ms,
            channel,
            frame: frame.to_vec(),
            collided,
        });
        if let Some(a) = self.airtime_ms.get_mut(from) {
            *a += end_ms - now_ms;
        }
        self.stats.transmitted += 1;
    }

    /// When the next frame finishes, if any is on the air.
    pub fn next_end(&self) -> Option<u64> {
        self.on_air.iter().map(|t| t.end_ms).min()
    }

    /// Frames that have finished by `now`, delivered to every radio that heard them whole
    /// on the same channel (`channel_of(radio)`) and was not transmitting meanwhile.
    /// `lost()` is asked once per reception and says whether the loss rate takes it.
    pub fn deliver(
        &mut self,
        now_ms: u64,
        channel_of: impl Fn(usize) -> Option<u64>,
        mut lost: impl FnMut(f64) -> bool,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        let (done, pending): (Vec<_>, Vec<_>) =
            self.on_air.drain(..).partition(|t| t.end_ms <= now_ms);
        self.on_air = pending.into();
        for t in done {
            for rx in 0..self.n {
                if !self.topology.hears(rx, t.from) || channel_of(rx) != Some(t.channel) {
                    continue;
                }
                if t.collided[rx] {
                    self.stats.collisions += 1;
                    continue;
                }
                if self.loss > 0.0 && lost(self.loss) {
                    self.stats.lost += 1;
                    continue;
                }
                self.stats.delivered += 1;
                out.push(Delivery {
                    to: rx,
                    frame: t.frame.clone(),
                    at_ms: t.end_ms,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: f64) -> bool {
        false
    }

    #[test]
    fn a_frame_arrives_after_its_airtime_at_everyone_in_range() {
        let mut m = Medium::new(3, Topology::Full, 0.0);
        m.transmit(0, 7, b"hello", 1000, 150);
        assert!(m.busy_for(1, 1100) && m.busy_for(2, 1100));
        assert!(!m.busy_for(0, 1100), "a radio does not hear itself");
        assert!(m.deliver(1149, |_| Some(7), never).is_empty());
        let got = m.deliver(1150, |_| Some(7), never);
        assert_eq!(got.iter().map(|d| d.to).collect::<Vec<_>>(), [1, 2]);
        assert!(got.iter().all(|d| d.frame == b"hello" && d.at_ms == 1150));
        assert!(!m.busy_for(1, 1150));
        assert_eq!(m.airtime_ms[0], 150);
    }

    #[test]
    fn a_line_only_reaches_neighbours() {
        let mut m = Medium::new(3, Topology::Line, 0.0);
        m.transmit(0, 7, b"x", 0, 10);
        let got = m.deliver(10, |_| Some(7), never);
        assert_eq!(got.iter().map(|d| d.to).collect::<Vec<_>>(), [1]);
        assert!(!m.busy_for(2, 5));
    }

    #[test]
    fn overlapping_frames_collide_where_both_are_heard() {
        // Hidden terminals: 0 and 2 cannot hear each other; both reach 1.
        let mut m = Medium::new(3, Topology::Line, 0.0);
        m.transmit(0, 7, b"a", 0, 100);
        assert!(!m.busy_for(2, 50), "2 cannot hear 0, so it talks");
        m.transmit(2, 7, b"b", 50, 100);
        let got = m.deliver(200, |_| Some(7), never);
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(m.stats.collisions, 2);
    }

    #[test]
    fn other_channels_and_lost_frames_are_not_received() {
        let mut m = Medium::new(2, Topology::Full, 0.5);
        m.transmit(0, 7, b"a", 0, 10);
        assert!(m.deliver(10, |_| Some(8), |_| false).is_empty());
        m.transmit(0, 7, b"a", 20, 10);
        assert!(m.deliver(30, |_| Some(7), |_| true).is_empty());
        assert_eq!(m.stats.lost, 1);
        m.transmit(0, 7, b"a", 40, 10);
        assert_eq!(m.deliver(50, |_| Some(7), |_| false).len(), 1);
    }

    #[test]
    fn a_transmitting_radio_does_not_receive() {
        let mut m = Medium::new(2, Topology::Full, 0.0);
        m.transmit(0, 7, b"a", 0, 100);
        m.transmit(1, 7, b"b", 10, 200);
        let got = m.deliver(100, |_| Some(7), never);
        assert!(got.is_empty(), "{got:?}");
    }
}
