//! Listen-before-talk, as RNode does it (`tx_queue_handler`, `updateBitrate`,
//! `update_csma_parameters`).
//!
//! * **Slot time** is 12 symbols, at most 100 ms; below 24 ms it is raised to 24 ms
//!   (6 ms on links faster than 30 kbit/s). **DIFS** is two slots (SIFS is 0).
//! * The **contention window** comes in four bands of 15 slots. Band 1 (0–14 slots)
//!   while our short-term airtime is at most 7 %; above that the band rises linearly,
//!   reaching band 4 (45–59 slots) at 78 % and over.
//! * For each transmission a slot count is drawn from the window. The channel must then
//!   stay free for DIFS, after which the drawn number of slots must pass with the
//!   channel free. A busy channel restarts the DIFS wait; slots already counted are
//!   kept (the back-off freezes rather than restarting).
//!
//! The state machine is sans-IO: [`Csma::poll`] takes the time and whether the medium
//! is free, and answers transmit-now or wait-until. While waiting it asks to be polled
//! again at least once per slot, so the channel is sampled at slot granularity.

use crate::airtime::Modulation;
use crate::airtime_meter::FULL;
use crate::rng::Rng;

/// Short inter-frame space, ms (`CSMA_SIFS_MS`).
pub const SIFS_MS: u32 = 0;
/// Symbols per slot (`CSMA_SLOT_SYMBOLS`).
pub const SLOT_SYMBOLS: u64 = 12;
/// Longest slot, ms (`CSMA_SLOT_MAX_MS`).
pub const SLOT_MAX_MS: u32 = 100;
/// Shortest slot, ms (`CSMA_SLOT_MIN_MS`).
pub const SLOT_MIN_MS: u32 = 24;
/// How much shorter the shortest slot is on fast links (`CSMA_SLOT_MIN_FAST_DELTA`).
pub const SLOT_MIN_FAST_DELTA_MS: u32 = 18;
/// Contention window bands (`CSMA_CW_BANDS`).
pub const CW_BANDS: u8 = 4;
/// Slots per band (`CSMA_CW_PER_BAND_WINDOWS`).
pub const CW_PER_BAND_WINDOWS: u8 = 15;
/// Highest short-term airtime (%) that keeps band 1 (`CSMA_BAND_1_MAX_AIRTIME`).
pub const BAND_1_MAX_AIRTIME_PCT: u16 = 7;
/// The airtime (%) the band mapping reaches the top band at (`CSMA_BAND_N_MIN_AIRTIME`).
pub const BAND_N_MIN_AIRTIME_PCT: u16 = 85;

/// Slot and DIFS durations for one modulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsmaTiming {
    /// One contention slot, ms.
    pub slot_ms: u32,
    /// DCF inter-frame space (SIFS + 2 slots), ms.
    pub difs_ms: u32,
}

impl Default for CsmaTiming {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl CsmaTiming {
    /// RNode's values before any modulation is set: 24 ms slots, 48 ms DIFS.
    pub const DEFAULT: CsmaTiming = CsmaTiming {
        slot_ms: SLOT_MIN_MS,
        difs_ms: SIFS_MS + 2 * SLOT_MIN_MS,
    };

    /// RNode's slot rule for `modulation`.
    pub const fn for_modulation(modulation: &Modulation) -> Self {
        let slot_min = if modulation.is_fast() {
            SLOT_MIN_MS - SLOT_MIN_FAST_DELTA_MS
        } else {
            SLOT_MIN_MS
        };
        // 12 symbols, truncated to whole ms as RNode's int conversion does.
        let raw = modulation.symbol_time_ns() as u128 * SLOT_SYMBOLS as u128 / 1_000_000;
        let slot_ms = if raw > SLOT_MAX_MS as u128 {
            SLOT_MAX_MS
        } else if raw < SLOT_MIN_MS as u128 {
            slot_min
        } else {
            raw as u32
        };
        CsmaTiming {
            slot_ms,
            difs_ms: SIFS_MS + 2 * slot_ms,
        }
    }
}

/// The contention window: a band and the slot range drawn from (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentionWindow {
    /// Band 1–4.
    pub band: u8,
    /// Fewest slots.
    pub min: u8,
    /// Most slots.
    pub max: u8,
}

impl Default for ContentionWindow {
    fn default() -> Self {
        Self::for_band(1)
    }
}

impl ContentionWindow {
    /// The window of `band` (clamped to 1–4): slots `(band−1)·15 ..= band·15 − 1`.
    pub const fn for_band(band: u8) -> Self {
        let band = if band < 1 {
            1
        } else if band > CW_BANDS {
            CW_BANDS
        } else {
            band
        };
        ContentionWindow {
            band,
            min: (band - 1) * CW_PER_BAND_WINDOWS,
            max: band * CW_PER_BAND_WINDOWS - 1,
        }
    }

    /// The window for a short-term airtime of `airtime_short` (percent × 100): band 1
    /// up to 7 %, then RNode's linear map of (airtime + 7) from 7…85 % onto bands 2…4.
    pub const fn for_airtime(airtime_short: u16) -> Self {
        let airtime = if airtime_short > FULL {
            FULL
        } else {
            airtime_short
        };
        let pct = airtime / 100;
        if pct <= BAND_1_MAX_AIRTIME_PCT {
            return Self::for_band(1);
        }
        let at = pct + BAND_1_MAX_AIRTIME_PCT;
        let span = BAND_N_MIN_AIRTIME_PCT - BAND_1_MAX_AIRTIME_PCT;
        let band = (at - BAND_1_MAX_AIRTIME_PCT) * (CW_BANDS as u16 - 2) / span + 2;
        Self::for_band(if band > CW_BANDS as u16 {
            CW_BANDS
        } else {
            band as u8
        })
    }

    /// Draw a slot count uniformly from the window.
    pub fn draw<G: Rng + ?Sized>(&self, rng: &mut G) -> u8 {
        let width = u32::from(self.max.saturating_sub(self.min)) + 1;
        self.min.saturating_add((rng.next_u32() % width) as u8)
    }

    /// The `STAT_CSMA` payload: band, min, max.
    pub const fn to_bytes(&self) -> [u8; 3] {
        [self.band, self.min, self.max]
    }
}

/// What to do about the queued frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsmaStep {
    /// The channel is ours: transmit now.
    Transmit,
    /// Poll again at this time (ms) or when the channel changes, whichever is first.
    WaitUntil(u64),
}

/// The listen-before-talk state of one pending transmission.
#[derive(Debug, Clone, Default)]
pub struct Csma {
    timing: CsmaTiming,
    slots: Option<u8>,
    difs_start: Option<u64>,
    cw_start: Option<u64>,
    cw_passed_ms: u64,
}

impl Csma {
    /// Idle, with `timing`.
    pub const fn new(timing: CsmaTiming) -> Self {
        Csma {
            timing,
            slots: None,
            difs_start: None,
            cw_start: None,
            cw_passed_ms: 0,
        }
    }

    /// The slot and DIFS durations in use.
    pub const fn timing(&self) -> CsmaTiming {
        self.timing
    }

    /// Use new durations (after a modulation change); a wait in progress goes on.
    pub fn set_timing(&mut self, timing: CsmaTiming) {
        self.timing = timing;
    }

    /// The slot count drawn for the pending transmission, if one is pending.
    pub const fn contention_slots(&self) -> Option<u8> {
        self.slots
    }

    /// Abandon the pending transmission's wait.
    pub fn reset(&mut self) {
        *self = Csma::new(self.timing);
    }

    /// Advance the wait for a queued frame: `medium_free` is the channel as sampled now.
    #[must_use]
    pub fn poll<G: Rng + ?Sized>(
        &mut self,
        now_ms: u64,
        medium_free: bool,
        window: &ContentionWindow,
        rng: &mut G,
    ) -> CsmaStep {
        let slot = u64::from(self.timing.slot_ms.max(1));
        let slots = match self.slots {
            Some(s) => s,
            None => {
                let s = window.draw(rng);
                self.slots = Some(s);
                s
            }
        };
        let target = u64::from(slots) * slot;
        let next_sample = now_ms.saturating_add(slot);
        if !medium_free {
            self.difs_start = None;
            self.cw_start = None;
            return CsmaStep::WaitUntil(next_sample);
        }
        let difs_start = *self.difs_start.get_or_insert(now_ms);
        let difs_end = difs_start.saturating_add(u64::from(self.timing.difs_ms));
        if now_ms < difs_end {
            return CsmaStep::WaitUntil(difs_end.min(next_sample));
        }
        let cw_start = self.cw_start.unwrap_or(difs_end).min(now_ms);
        self.cw_passed_ms = self.cw_passed_ms.saturating_add(now_ms - cw_start);
        self.cw_start = Some(now_ms);
        if self.cw_passed_ms >= target {
            self.reset();
            return CsmaStep::Transmit;
        }
        let remaining = target - self.cw_passed_ms;
        CsmaStep::WaitUntil(now_ms.saturating_add(remaining).min(next_sample))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u32);
    impl Rng for Fixed {
        fn next_u32(&mut self) -> u32 {
            self.0
        }
    }

    fn timing(sf: u8, bw: u32) -> CsmaTiming {
        CsmaTiming::for_modulation(&Modulation::rnode(sf, bw, 5).unwrap())
    }

    #[test]
    fn slot_and_difs_follow_rnode() {
        assert_eq!(
            timing(7, 125_000),
            CsmaTiming {
                slot_ms: 24,
                difs_ms: 48
            }
        );
        assert_eq!(
            timing(9, 125_000),
            CsmaTiming {
                slot_ms: 49,
                difs_ms: 98
            }
        );
        assert_eq!(
            timing(10, 125_000),
            CsmaTiming {
                slot_ms: 98,
                difs_ms: 196
            }
        );
        assert_eq!(
            timing(12, 125_000),
            CsmaTiming {
                slot_ms: 100,
                difs_ms: 200
            }
        );
        // 62.5 kbit/s is a fast link: the 24 ms floor drops to 6 ms.
        assert_eq!(
            timing(5, 500_000),
            CsmaTiming {
                slot_ms: 6,
                difs_ms: 12
            }
        );
        assert_eq!(
            CsmaTiming::default(),
            CsmaTiming {
                slot_ms: 24,
                difs_ms: 48
            }
        );
    }

    #[test]
    fn contention_window_bands() {
        let w = |pct: u16| ContentionWindow::for_airtime(pct * 100);
        assert_eq!(
            w(0),
            ContentionWindow {
                band: 1,
                min: 0,
                max: 14
            }
        );
        assert_eq!(
            w(7),
            ContentionWindow {
                band: 1,
                min: 0,
                max: 14
            }
        );
        assert_eq!(
            w(8),
            ContentionWindow {
                band: 2,
                min: 15,
                max: 29
            }
        );
        assert_eq!(w(38).band, 2);
        assert_eq!(
            w(39),
            ContentionWindow {
                band: 3,
                min: 30,
                max: 44
            }
        );
        assert_eq!(
            w(78),
            ContentionWindow {
                band: 4,
                min: 45,
                max: 59
            }
        );
        assert_eq!(w(100).band, 4);
        assert_eq!(ContentionWindow::for_airtime(u16::MAX).band, 4);
        assert_eq!(ContentionWindow::for_band(9).to_bytes(), [4, 45, 59]);
    }

    #[test]
    fn draws_stay_in_the_window() {
        let w = ContentionWindow::for_band(3);
        assert_eq!(w.draw(&mut Fixed(0)), 30);
        assert_eq!(w.draw(&mut Fixed(14)), 44);
        assert_eq!(w.draw(&mut Fixed(15)), 30);
        assert_eq!(w.draw(&mut Fixed(u32::MAX)), 30 + (u32::MAX % 15) as u8);
    }

    /// Poll at every requested wake-up with a channel given by `busy(t)`; returns the
    /// transmit time.
    fn run(csma: &mut Csma, slots: u32, busy: impl Fn(u64) -> bool) -> u64 {
        let w = ContentionWindow::for_band(1);
        let mut now = 0;
        for _ in 0..1000 {
            match csma.poll(now, !busy(now), &w, &mut Fixed(slots)) {
                CsmaStep::Transmit => return now,
                CsmaStep::WaitUntil(t) => {
                    assert!(t > now, "wake-ups move forward");
                    assert!(
                        t - now <= u64::from(csma.timing().slot_ms),
                        "sampled every slot"
                    );
                    now = t;
                }
            }
        }
        panic!("never transmitted");
    }

    #[test]
    fn free_channel_waits_difs_then_the_drawn_slots() {
        let mut c = Csma::new(CsmaTiming::DEFAULT);
        assert_eq!(run(&mut c, 3, |_| false), 48 + 3 * 24);
        assert_eq!(
            c.contention_slots(),
            None,
            "state resets after transmitting"
        );
        assert_eq!(run(&mut c, 0, |_| false), 48);
    }

    #[test]
    fn busy_channel_restarts_difs_and_freezes_the_backoff() {
        // Busy from 0 to 100: DIFS starts at the first free sample.
        let mut c = Csma::new(CsmaTiming::DEFAULT);
        let t = run(&mut c, 3, |t| t < 100);
        assert_eq!(
            t,
            120 + 48 + 72,
            "first free sample at 120, then DIFS and 3 slots"
        );

        // Busy at exactly one sample (96) after one slot of back-off was counted at 72:
        // DIFS again from 120, then the remaining two slots.
        let mut c = Csma::new(CsmaTiming::DEFAULT);
        let t = run(&mut c, 3, |t| t == 96);
        assert_eq!(t, 120 + 48 + 48);
    }

    #[test]
    fn late_polls_still_count_elapsed_free_time() {
        let mut c = Csma::new(CsmaTiming::DEFAULT);
        let w = ContentionWindow::for_band(1);
        assert_eq!(c.poll(0, true, &w, &mut Fixed(2)), CsmaStep::WaitUntil(24));
        // Polled only once, long after DIFS and both slots: transmit.
        assert_eq!(c.poll(1_000, true, &w, &mut Fixed(2)), CsmaStep::Transmit);
    }
}
