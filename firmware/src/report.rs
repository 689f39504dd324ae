//! What the modem sends the host: payload layouts of the status reports, and the
//! bounded buffer whole KISS frames wait in until the host link takes them.

use crate::airtime::Modulation;
use crate::airtime_meter::AirtimeStats;
use crate::cmd;
use crate::csma::CsmaTiming;
use crate::kiss;

/// An RSSI in dBm as one report byte (`dBm + 157`, clamped to 0–255).
pub fn rssi_byte(dbm: i16) -> u8 {
    dbm.saturating_add(cmd::RSSI_OFFSET).clamp(0, 255) as u8
}

/// The 11-byte `STAT_CHTM` payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStats {
    /// Airtime and channel-load ratios, percent × 100.
    pub airtime: AirtimeStats,
    /// The channel RSSI now, dBm.
    pub current_rssi: i16,
    /// The noise floor, dBm.
    pub noise_floor: i16,
    /// The interfering signal's RSSI, dBm, if interference is detected.
    pub interference: Option<i16>,
}

impl ChannelStats {
    /// airtime short, airtime long, load short, load long (u16 BE each), then RSSI,
    /// noise floor and interference (`0xFF` when none) as RSSI bytes.
    pub fn to_bytes(&self) -> [u8; 11] {
        let a = &self.airtime;
        let [a0, a1] = a.airtime_short.to_be_bytes();
        let [b0, b1] = a.airtime_long.to_be_bytes();
        let [c0, c1] = a.load_short.to_be_bytes();
        let [d0, d1] = a.load_long.to_be_bytes();
        [
            a0,
            a1,
            b0,
            b1,
            c0,
            c1,
            d0,
            d1,
            rssi_byte(self.current_rssi),
            rssi_byte(self.noise_floor),
            self.interference.map_or(0xFF, rssi_byte),
        ]
    }
}

/// The 12-byte `STAT_PHYPRM` payload (six u16 BE): symbol time µs, symbol rate baud,
/// preamble symbols, preamble time ms, CSMA slot ms, DIFS ms. Values past 65535
/// saturate.
pub fn phy_params(modulation: &Modulation, timing: &CsmaTiming) -> [u8; 12] {
    let sat = |v: u32| u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes();
    let fields = [
        sat(modulation.symbol_time_us()),
        sat(modulation.symbol_rate()),
        modulation.preamble_symbols.to_be_bytes(),
        sat(modulation.preamble_time_ms()),
        sat(timing.slot_ms),
        sat(timing.difs_ms),
    ];
    let mut out = [0u8; 12];
    for (chunk, f) in out.chunks_exact_mut(2).zip(fields) {
        chunk.copy_from_slice(&f);
    }
    out
}

/// A FIFO of bytes for the host holding up to `N` bytes. Frames go in whole or not at
/// all, so a full buffer never leaves a torn frame on the link.
#[derive(Debug, Clone, Default)]
pub struct HostOutput<const N: usize> {
    bytes: heapless::Deque<u8, N>,
    /// Frames dropped because they did not fit.
    pub dropped_frames: u32,
}

impl<const N: usize> HostOutput<N> {
    /// Empty.
    pub const fn new() -> Self {
        HostOutput {
            bytes: heapless::Deque::new(),
            dropped_frames: 0,
        }
    }

    /// Free space, bytes.
    pub fn free(&self) -> usize {
        N - self.bytes.len()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The escaped length of a frame.
    pub fn frame_len(command: u8, payload: &[u8]) -> usize {
        kiss::escaped(command, payload).count()
    }

    /// Queue one frame; returns whether it fit (a frame that does not fit is dropped
    /// and counted).
    pub fn push_frame(&mut self, command: u8, payload: &[u8]) -> bool {
        self.push_frames(&[(command, payload)])
    }

    /// Queue several frames, all or none; returns whether they fit.
    pub fn push_frames(&mut self, frames: &[(u8, &[u8])]) -> bool {
        let need: usize = frames.iter().map(|(c, p)| Self::frame_len(*c, p)).sum();
        if need > self.free() {
            self.dropped_frames = self.dropped_frames.saturating_add(frames.len() as u32);
            return false;
        }
        for (c, p) in frames {
            for b in kiss::escaped(*c, p) {
                // Cannot fail: the space was checked above.
                let _ = self.bytes.push_back(b);
            }
        }
        true
    }

    /// Take the next byte.
    pub fn pop(&mut self) -> Option<u8> {
        self.bytes.pop_front()
    }

    /// Move up to `out.len()` bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            match self.bytes.pop_front() {
                Some(b) => {
                    *slot = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn rssi_bytes() {
        assert_eq!(rssi_byte(-157), 0);
        assert_eq!(rssi_byte(-100), 57);
        assert_eq!(rssi_byte(-300), 0);
        assert_eq!(rssi_byte(200), 255);
    }

    #[test]
    fn channel_stats_layout() {
        let s = ChannelStats {
            airtime: AirtimeStats {
                airtime_short: 0x0102,
                airtime_long: 0x0304,
                load_short: 0x0506,
                load_long: 0x0708,
            },
            current_rssi: -100,
            noise_floor: -120,
            interference: None,
        };
        assert_eq!(s.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 57, 37, 0xFF]);
        let s = ChannelStats {
            interference: Some(-90),
            ..s
        };
        assert_eq!(s.to_bytes()[10], 67);
    }

    #[test]
    fn phy_params_layout() {
        let m = Modulation::rnode(9, 125_000, 5).unwrap();
        let t = CsmaTiming::for_modulation(&m);
        // 4096 µs, 244 baud, 18 symbols, 74 ms (73.7 rounded up), slot 49, DIFS 98.
        assert_eq!(
            phy_params(&m, &t),
            [0x10, 0x00, 0, 244, 0, 18, 0, 74, 0, 49, 0, 98]
        );
        let slow = Modulation::rnode(12, 7_800, 8).unwrap();
        assert_eq!(
            &phy_params(&slow, &t)[..2],
            &[0xFF, 0xFF],
            "525 ms saturates"
        );
    }

    #[test]
    fn frames_go_in_whole_or_not_at_all() {
        let mut o = HostOutput::<10>::new();
        assert!(o.push_frame(0x08, &[0x46]));
        assert_eq!(o.len(), 4);
        assert!(!o.push_frames(&[(0x01, &[0xC0, 0, 0, 0]), (0x02, &[])]));
        assert_eq!(o.dropped_frames, 2);
        assert!(o.push_frame(0x01, &[0xC0, 1]));
        let mut buf = [0u8; 64];
        let n = o.read(&mut buf);
        assert_eq!(
            &buf[..n],
            &[0xC0, 0x08, 0x46, 0xC0, 0xC0, 0x01, 0xDB, 0xDC, 1, 0xC0]
        );
        assert!(o.is_empty());
        assert_eq!(o.pop(), None);
        let v: Vec<u8> = kiss::escaped(1, &[2]).collect();
        assert_eq!(HostOutput::<1>::frame_len(1, &[2]), v.len());
    }
}
