//! LoRa modulation settings and how long a frame stays on air.
//!
//! Time on air follows Semtech AN1200.13 (the SX127x/SX126x datasheet formula):
//!
//! ```text
//! T_sym      = 2^SF / BW
//! T_preamble = (n_preamble + 4.25) · T_sym
//! N_payload  = 8 + max(ceil((8·PL − 4·SF + 28 + 16·CRC − 20·IH) / (4·(SF − 2·DE))) · CR, 0)
//! T_air      = T_preamble + N_payload · T_sym
//! ```
//!
//! with `CR` the denominator of the coding rate (5 … 8 for 4/5 … 4/8) and `DE` (low
//! data-rate optimisation) on when a symbol lasts longer than 16 ms. All arithmetic is
//! integer; results are exact to the microsecond (rounded up).
//!
//! [`Modulation::rnode`] applies RNode's own preamble rule: enough symbols to last
//! 24 ms (6 ms above 30 kbit/s), never fewer than 18.

use core::fmt;

/// Lowest spreading factor.
pub const SF_MIN: u8 = 5;
/// Highest spreading factor.
pub const SF_MAX: u8 = 12;
/// Narrowest bandwidth, Hz (7.8 kHz).
pub const BANDWIDTH_MIN_HZ: u32 = 7_800;
/// Widest bandwidth, Hz (1625 kHz, SX128x).
pub const BANDWIDTH_MAX_HZ: u32 = 1_625_000;
/// Lowest coding rate denominator (4/5).
pub const CR_MIN: u8 = 5;
/// Highest coding rate denominator (4/8).
pub const CR_MAX: u8 = 8;

/// RNode never uses fewer preamble symbols than this (`LORA_PREAMBLE_SYMBOLS_MIN`).
pub const RNODE_PREAMBLE_SYMBOLS_MIN: u16 = 18;
/// RNode sizes the preamble to last at least this long (`LORA_PREAMBLE_TARGET_MS`).
pub const RNODE_PREAMBLE_TARGET_MS: u64 = 24;
/// Above [`FAST_THRESHOLD_BPS`] the preamble target shrinks by this much.
pub const RNODE_PREAMBLE_FAST_DELTA_MS: u64 = 18;
/// Above this link bitrate RNode treats the link as fast (shorter preamble and slot).
pub const FAST_THRESHOLD_BPS: u32 = 30_000;
/// Above this link bitrate RNode sends one queued packet per CSMA round instead of
/// flushing the whole queue.
pub const LIMIT_THRESHOLD_BPS: u32 = 60_000;

/// The preamble length used by [`Modulation::new`] (the LoRaWAN/Semtech default).
pub const DEFAULT_PREAMBLE_SYMBOLS: u16 = 8;

/// A symbol longer than this (ms) needs low data-rate optimisation.
const LOW_DATA_RATE_SYMBOL_MS: u64 = 16;

/// An invalid [`Modulation`] field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModulationError {
    /// Spreading factor outside 5–12.
    SpreadingFactor(u8),
    /// Bandwidth outside 7.8–1625 kHz.
    Bandwidth(u32),
    /// Coding rate outside 5–8 (4/5 … 4/8).
    CodingRate(u8),
    /// A preamble of zero symbols.
    Preamble,
}

impl fmt::Display for ModulationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModulationError::SpreadingFactor(sf) => {
                write!(f, "spreading factor {sf} is outside {SF_MIN}-{SF_MAX}")
            }
            ModulationError::Bandwidth(bw) => write!(
                f,
                "bandwidth {bw} Hz is outside {BANDWIDTH_MIN_HZ}-{BANDWIDTH_MAX_HZ} Hz"
            ),
            ModulationError::CodingRate(cr) => {
                write!(f, "coding rate 4/{cr} is outside 4/{CR_MIN}-4/{CR_MAX}")
            }
            ModulationError::Preamble => f.write_str("the preamble must be at least one symbol"),
        }
    }
}

/// LoRa modulation settings: everything a frame's time on air depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modulation {
    /// Spreading factor, 5–12.
    pub sf: u8,
    /// Bandwidth in Hz, 7 800 – 1 625 000.
    pub bandwidth_hz: u32,
    /// Coding rate denominator, 5–8 (4/5 … 4/8), as RNode's `CR` command carries it.
    pub coding_rate: u8,
    /// Preamble length in symbols (the 4.25 sync symbols come on top).
    pub preamble_symbols: u16,
    /// Whether the payload carries a CRC (RNode always enables it).
    pub crc: bool,
    /// Implicit header mode (no PHY header; RNode uses explicit headers).
    pub implicit_header: bool,
}

const fn ceil_div(n: u128, d: u128) -> u128 {
    if d == 0 {
        0
    } else {
        n.div_ceil(d)
    }
}

const fn saturate_u32(v: u128) -> u32 {
    if v > u32::MAX as u128 {
        u32::MAX
    } else {
        v as u32
    }
}

impl Modulation {
    /// Settings with an 8-symbol preamble, CRC on and an explicit header, validated.
    pub const fn new(sf: u8, bandwidth_hz: u32, coding_rate: u8) -> Result<Self, ModulationError> {
        let m = Modulation {
            sf,
            bandwidth_hz,
            coding_rate,
            preamble_symbols: DEFAULT_PREAMBLE_SYMBOLS,
            crc: true,
            implicit_header: false,
        };
        match m.validate() {
            Ok(()) => Ok(m),
            Err(e) => Err(e),
        }
    }

    /// Settings as an RNode would use them: CRC on, explicit header and RNode's
    /// preamble ([`Modulation::rnode_preamble_symbols`]).
    pub const fn rnode(
        sf: u8,
        bandwidth_hz: u32,
        coding_rate: u8,
    ) -> Result<Self, ModulationError> {
        match Modulation::new(sf, bandwidth_hz, coding_rate) {
            Ok(mut m) => {
                m.preamble_symbols = m.rnode_preamble_symbols();
                Ok(m)
            }
            Err(e) => Err(e),
        }
    }

    /// The same settings with another preamble length.
    #[must_use]
    pub const fn with_preamble(mut self, symbols: u16) -> Self {
        self.preamble_symbols = symbols;
        self
    }

    /// Check every field against the ranges RNode and RNS accept.
    pub const fn validate(&self) -> Result<(), ModulationError> {
        if self.sf < SF_MIN || self.sf > SF_MAX {
            return Err(ModulationError::SpreadingFactor(self.sf));
        }
        if self.bandwidth_hz < BANDWIDTH_MIN_HZ || self.bandwidth_hz > BANDWIDTH_MAX_HZ {
            return Err(ModulationError::Bandwidth(self.bandwidth_hz));
        }
        if self.coding_rate < CR_MIN || self.coding_rate > CR_MAX {
            return Err(ModulationError::CodingRate(self.coding_rate));
        }
        if self.preamble_symbols == 0 {
            return Err(ModulationError::Preamble);
        }
        Ok(())
    }

    /// Chips per symbol, 2^SF (SF clamped to 0–12 so an unvalidated value cannot
    /// overflow).
    const fn chips(&self) -> u128 {
        let sf = if self.sf > SF_MAX { SF_MAX } else { self.sf };
        1u128 << sf
    }

    /// Symbol time in nanoseconds (rounded down).
    pub const fn symbol_time_ns(&self) -> u64 {
        if self.bandwidth_hz == 0 {
            return 0;
        }
        (self.chips() * 1_000_000_000 / self.bandwidth_hz as u128) as u64
    }

    /// Symbol time in microseconds (rounded down); this is what `STAT_PHYPRM` reports.
    pub const fn symbol_time_us(&self) -> u32 {
        if self.bandwidth_hz == 0 {
            return 0;
        }
        saturate_u32(self.chips() * 1_000_000 / self.bandwidth_hz as u128)
    }

    /// Symbols per second (rounded down).
    pub const fn symbol_rate(&self) -> u32 {
        saturate_u32(self.bandwidth_hz as u128 / self.chips())
    }

    /// Whether low data-rate optimisation applies: a symbol lasts longer than 16 ms
    /// (SF11 and SF12 at 125 kHz, SF12 at 250 kHz, …).
    pub const fn low_data_rate_optimize(&self) -> bool {
        self.chips() * 1_000 > LOW_DATA_RATE_SYMBOL_MS as u128 * self.bandwidth_hz as u128
    }

    /// Symbols after the preamble for a PHY payload of `payload_len` bytes: the
    /// `N_payload` of the formula (header, payload and CRC).
    pub const fn payload_symbols(&self, payload_len: usize) -> u32 {
        let pl = if payload_len > u16::MAX as usize {
            u16::MAX as i64
        } else {
            payload_len as i64
        };
        let sf = self.sf as i64;
        let de = self.low_data_rate_optimize() as i64;
        let numerator =
            8 * pl - 4 * sf + 28 + 16 * (self.crc as i64) - 20 * (self.implicit_header as i64);
        let denominator = 4 * (sf - 2 * de);
        let blocks = if numerator <= 0 || denominator <= 0 {
            0
        } else {
            ceil_div(numerator as u128, denominator as u128)
        };
        saturate_u32(8 + blocks * self.coding_rate as u128)
    }

    /// Time on air of one LoRa frame whose PHY payload is `payload_len` bytes, in
    /// microseconds (rounded up).
    pub const fn airtime_us(&self, payload_len: usize) -> u64 {
        if self.bandwidth_hz == 0 {
            return 0;
        }
        // Quarter symbols: the preamble's 4.25 sync symbols become 17.
        let quarter_symbols =
            4 * self.preamble_symbols as u128 + 17 + 4 * self.payload_symbols(payload_len) as u128;
        let us = ceil_div(
            quarter_symbols * self.chips() * 1_000_000,
            4 * self.bandwidth_hz as u128,
        );
        if us > u64::MAX as u128 {
            u64::MAX
        } else {
            us as u64
        }
    }

    /// The link bitrate estimate RNS and RNode use: `SF · (4/CR) · BW / 2^SF` bit/s,
    /// rounded down (RNS logs it; RNode picks its fast-link behaviour from it).
    pub const fn bitrate_bps(&self) -> u32 {
        let denominator = self.coding_rate as u128 * self.chips();
        if denominator == 0 {
            return 0;
        }
        saturate_u32(self.sf as u128 * 4 * self.bandwidth_hz as u128 / denominator)
    }

    /// Whether RNode treats this as a fast link (above 30 kbit/s): shorter preamble
    /// target and shorter minimum CSMA slot.
    pub const fn is_fast(&self) -> bool {
        self.bitrate_bps() > FAST_THRESHOLD_BPS
    }

    /// Whether RNode sends one packet per CSMA round (above 60 kbit/s) instead of
    /// flushing its whole queue after winning the channel.
    pub const fn is_rate_limited(&self) -> bool {
        self.bitrate_bps() > LIMIT_THRESHOLD_BPS
    }

    /// RNode's preamble rule: as many symbols as fill 24 ms (6 ms on fast links),
    /// rounded up, but at least 18. So 24 symbols at SF7/125 kHz and 18 from SF8 up.
    pub const fn rnode_preamble_symbols(&self) -> u16 {
        let target_ms = if self.is_fast() {
            RNODE_PREAMBLE_TARGET_MS - RNODE_PREAMBLE_FAST_DELTA_MS
        } else {
            RNODE_PREAMBLE_TARGET_MS
        };
        // target / T_sym = target_ms · BW / (2^SF · 1000)
        let numerator = target_ms as u128 * self.bandwidth_hz as u128;
        let denominator = self.chips() * 1_000;
        if numerator < RNODE_PREAMBLE_SYMBOLS_MIN as u128 * denominator {
            RNODE_PREAMBLE_SYMBOLS_MIN
        } else {
            let s = ceil_div(numerator, denominator);
            if s > u16::MAX as u128 {
                u16::MAX
            } else {
                s as u16
            }
        }
    }

    /// The preamble's duration in whole milliseconds, rounded up (as `STAT_PHYPRM`
    /// reports it; the sync symbols are not included).
    pub const fn preamble_time_ms(&self) -> u32 {
        if self.bandwidth_hz == 0 {
            return 0;
        }
        saturate_u32(ceil_div(
            self.preamble_symbols as u128 * self.chips() * 1_000,
            self.bandwidth_hz as u128,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sf: u8, bw: u32) -> Modulation {
        Modulation::new(sf, bw, 5).unwrap()
    }

    #[test]
    fn semtech_vectors() {
        // lora-modulation crate example: SF9/125k/CR4-5, 12 B, 8-symbol preamble.
        assert_eq!(m(9, 125_000).airtime_us(12), 144_384);
        // LoRaWAN SF12/125k, 64 B PHY payload (51 B application + 13 B overhead).
        assert_eq!(m(12, 125_000).airtime_us(64), 2_793_472);
    }

    #[test]
    fn announce_row_of_lora_airtime_md() {
        // Announce: 167 B + 1 B RNode header, 8-symbol preamble, 125 kHz, CR 4/5.
        let expected_ms = [272, 482, 861, 1559, 3445, 6234];
        for (sf, want) in (7u8..=12).zip(expected_ms) {
            let us = m(sf, 125_000).airtime_us(168);
            assert_eq!((us + 500) / 1000, want, "SF{sf}");
        }
    }

    #[test]
    fn keepalive_and_link_proof_rows() {
        let keepalive = [57, 103, 185, 371, 741, 1483];
        let proof = [195, 349, 615, 1149, 2462, 4596];
        for (i, sf) in (7u8..=12).enumerate() {
            assert_eq!((m(sf, 125_000).airtime_us(21) + 500) / 1000, keepalive[i]);
            assert_eq!((m(sf, 125_000).airtime_us(116) + 500) / 1000, proof[i]);
        }
    }

    #[test]
    fn rnode_preamble_rule() {
        let want = [24u16, 18, 18, 18, 18, 18];
        for (sf, w) in (7u8..=12).zip(want) {
            assert_eq!(
                Modulation::rnode(sf, 125_000, 5).unwrap().preamble_symbols,
                w
            );
        }
        // Announce with RNode's preamble: 288 / 502 / 902 / 1640 / 3609 / 6562 ms.
        let expected_ms = [288, 502, 902, 1640, 3609, 6562];
        for (sf, want) in (7u8..=12).zip(expected_ms) {
            let us = Modulation::rnode(sf, 125_000, 5).unwrap().airtime_us(168);
            assert_eq!((us + 500) / 1000, want, "SF{sf}");
        }
        // A fast link (SF5/500 kHz, 62.5 kbit/s): the target shrinks to 6 ms, which
        // is 93.75 symbols of 64 µs.
        let fast = Modulation::rnode(5, 500_000, 5).unwrap();
        assert!(fast.is_fast());
        assert_eq!(fast.preamble_symbols, 94);
        // SF7/500 kHz (21.9 kbit/s) is not fast: 24 ms of 256 µs symbols.
        assert_eq!(
            Modulation::rnode(7, 500_000, 5).unwrap().preamble_symbols,
            94
        );
        assert_eq!(
            Modulation::rnode(8, 500_000, 5).unwrap().preamble_symbols,
            47
        );
        // A slow-symbol, wide link where 24 ms needs more than 18 symbols.
        let wide = Modulation::rnode(6, 125_000, 8).unwrap();
        assert_eq!(wide.preamble_symbols, 47); // 24 ms / 0.512 ms = 46.9
    }

    #[test]
    fn low_data_rate_threshold() {
        assert!(!m(10, 125_000).low_data_rate_optimize());
        assert!(m(11, 125_000).low_data_rate_optimize());
        assert!(m(12, 250_000).low_data_rate_optimize());
        assert!(!m(11, 250_000).low_data_rate_optimize());
    }

    #[test]
    fn symbol_times_and_rates() {
        let sf9 = m(9, 125_000);
        assert_eq!(sf9.symbol_time_us(), 4_096);
        assert_eq!(sf9.symbol_rate(), 244);
        assert_eq!(m(12, 125_000).symbol_time_ns(), 32_768_000);
        assert_eq!(
            Modulation::rnode(7, 125_000, 5).unwrap().preamble_time_ms(),
            25
        );
        assert_eq!(
            Modulation::rnode(12, 125_000, 5)
                .unwrap()
                .preamble_time_ms(),
            590
        );
    }

    #[test]
    fn rns_bitrate_estimate() {
        // Table in lora-airtime.md: 5,469 and 293 bit/s at SF7 and SF12 (rounded there;
        // RNode truncates).
        assert_eq!(m(7, 125_000).bitrate_bps(), 5_468);
        assert_eq!(m(12, 125_000).bitrate_bps(), 292);
        assert_eq!(Modulation::new(7, 125_000, 8).unwrap().bitrate_bps(), 3_417);
        assert!(!m(7, 500_000).is_rate_limited());
        assert!(Modulation::new(5, 1_625_000, 5).unwrap().is_rate_limited());
    }

    #[test]
    fn validation() {
        assert_eq!(
            Modulation::new(4, 125_000, 5),
            Err(ModulationError::SpreadingFactor(4))
        );
        assert_eq!(
            Modulation::new(13, 125_000, 5),
            Err(ModulationError::SpreadingFactor(13))
        );
        assert_eq!(
            Modulation::new(7, 7_799, 5),
            Err(ModulationError::Bandwidth(7_799))
        );
        assert_eq!(
            Modulation::new(7, 1_625_001, 5),
            Err(ModulationError::Bandwidth(1_625_001))
        );
        assert_eq!(
            Modulation::new(7, 125_000, 4),
            Err(ModulationError::CodingRate(4))
        );
        assert_eq!(
            Modulation::new(7, 125_000, 9),
            Err(ModulationError::CodingRate(9))
        );
        assert!(Modulation::new(5, 7_800, 8).is_ok());
        assert_eq!(
            m(7, 125_000).with_preamble(0).validate(),
            Err(ModulationError::Preamble)
        );
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let slow = Modulation::new(12, 7_800, 8)
            .unwrap()
            .with_preamble(u16::MAX);
        assert!(slow.airtime_us(usize::MAX) > 0);
        let broken = Modulation {
            sf: 200,
            bandwidth_hz: 0,
            coding_rate: 0,
            preamble_symbols: 0,
            crc: false,
            implicit_header: true,
        };
        assert_eq!(broken.airtime_us(10), 0);
        assert_eq!(broken.bitrate_bps(), 0);
        let _ = broken.rnode_preamble_symbols();
        let _ = broken.payload_symbols(0);
    }
}
