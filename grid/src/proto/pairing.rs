//! Pairing by word code, without IO: the offer, its window and its tries.
//!
//! `grid pair` on one node opens an offer with a fresh four-word code (32 bits, drawn by
//! the driver and handed in); `grid pair <node> <code>` on another presents it with the
//! built-in `grid/join` command. On a match the offering node gives the joiner the
//! offer's trust level (the driver records it) and answers with its identity, which the
//! joiner then trusts in turn. An offer lasts a few minutes and allows [`TRIES`] wrong
//! codes, so guessing is hopeless: at most 3 guesses of 2³² per offer.

use std::time::Duration;

use rns_core::{AddressHash, Instant};

use crate::trust::{pairing_code_from_bytes, parse_pairing_code, TrustLevel, PAIRING_CODE_WORDS};

/// Wrong codes an offer survives.
pub const TRIES: u8 = 3;
/// How long an offer stays open unless told otherwise.
pub const WINDOW: Duration = Duration::from_secs(300);

/// An open pairing offer.
#[derive(Debug, Clone)]
struct Offer {
    code: [u8; PAIRING_CODE_WORDS],
    level: TrustLevel,
    expires: Instant,
    tries_left: u8,
}

/// Where the latest offer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingState {
    /// No offer made yet.
    None,
    /// Open, waiting for the code, for this long yet.
    Waiting(Duration),
    /// Paired with this identity at this level.
    Paired(AddressHash, TrustLevel),
    /// Expired or closed after too many wrong codes.
    Closed(&'static str),
}

/// Why a `grid/join` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The caller did not identify on its link.
    #[error("identify on the link to pair")]
    Anonymous,
    /// No offer is open (none made, expired, or closed).
    #[error("no pairing offer is open on this node (run `grid pair` there first)")]
    NoOffer,
    /// The code did not match (the offer closes after [`TRIES`] of these).
    #[error("wrong pairing code")]
    WrongCode,
}

/// This node's pairing offer and how the latest one ended.
#[derive(Debug, Default)]
pub struct Pairing {
    offer: Option<Offer>,
    last: Option<PairingState>,
}

impl Pairing {
    /// Open an offer granting `level` to whoever presents `code` (random bytes the
    /// driver drew) before `now + window`; returns the code as words. Replaces any open
    /// offer.
    pub fn offer(
        &mut self,
        now: Instant,
        code: [u8; PAIRING_CODE_WORDS],
        level: TrustLevel,
        window: Duration,
    ) -> String {
        self.offer = Some(Offer {
            code,
            level,
            expires: now + window,
            tries_left: TRIES,
        });
        self.last = None;
        pairing_code_from_bytes(code)
    }

    /// Where the latest offer stands at `now`.
    pub fn state(&mut self, now: Instant) -> PairingState {
        self.expire(now);
        match (&self.offer, &self.last) {
            (Some(o), _) => PairingState::Waiting(o.expires.saturating_since(now)),
            (None, Some(last)) => last.clone(),
            (None, None) => PairingState::None,
        }
    }

    fn expire(&mut self, now: Instant) {
        if self.offer.as_ref().is_some_and(|o| now >= o.expires) {
            self.offer = None;
            self.last = Some(PairingState::Closed("expired"));
        }
    }

    /// `grid/join` from `caller` presenting `code` (words, as typed). On a match the offer
    /// closes and the caller is to be given the returned level.
    pub fn join(
        &mut self,
        now: Instant,
        caller: Option<AddressHash>,
        code: Option<&str>,
    ) -> Result<TrustLevel, JoinError> {
        let caller = caller.ok_or(JoinError::Anonymous)?;
        self.expire(now);
        let offer = self.offer.as_mut().ok_or(JoinError::NoOffer)?;
        let given = code.and_then(parse_pairing_code);
        // Compare every byte, whatever the first difference (no early exit to time).
        let matches = given.is_some_and(|g| {
            g.iter()
                .zip(offer.code.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        });
        if !matches {
            offer.tries_left = offer.tries_left.saturating_sub(1);
            if offer.tries_left == 0 {
                self.offer = None;
                self.last = Some(PairingState::Closed("too many wrong codes"));
            }
            return Err(JoinError::WrongCode);
        }
        let level = offer.level;
        self.offer = None;
        self.last = Some(PairingState::Paired(caller, level));
        Ok(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: [u8; PAIRING_CODE_WORDS] = [1, 2, 3, 4];
    const ME: Option<AddressHash> = Some(AddressHash([7; 16]));

    fn at(s: u64) -> Instant {
        Instant::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn the_right_code_pairs_once_at_the_offered_level() {
        let mut p = Pairing::default();
        assert_eq!(p.state(at(0)), PairingState::None);
        let words = p.offer(at(0), CODE, TrustLevel::Trusted, WINDOW);
        assert_eq!(
            p.state(at(10)),
            PairingState::Waiting(WINDOW - Duration::from_secs(10))
        );
        assert_eq!(
            p.join(at(10), None, Some(&words)),
            Err(JoinError::Anonymous)
        );
        assert_eq!(p.join(at(10), ME, Some(&words)), Ok(TrustLevel::Trusted));
        assert_eq!(
            p.state(at(11)),
            PairingState::Paired(ME.unwrap(), TrustLevel::Trusted)
        );
        assert_eq!(
            p.join(at(12), ME, Some(&words)),
            Err(JoinError::NoOffer),
            "used up"
        );
    }

    #[test]
    fn wrong_codes_close_the_offer_after_three() {
        let mut p = Pairing::default();
        let words = p.offer(at(0), CODE, TrustLevel::Trusted, WINDOW);
        let wrong = pairing_code_from_bytes([9, 9, 9, 9]);
        for _ in 0..TRIES - 1 {
            assert_eq!(p.join(at(1), ME, Some(&wrong)), Err(JoinError::WrongCode));
        }
        assert_eq!(
            p.join(at(1), ME, Some("not words")),
            Err(JoinError::WrongCode)
        );
        assert_eq!(p.state(at(2)), PairingState::Closed("too many wrong codes"));
        assert_eq!(p.join(at(2), ME, Some(&words)), Err(JoinError::NoOffer));
    }

    #[test]
    fn offers_expire() {
        let mut p = Pairing::default();
        let words = p.offer(at(0), CODE, TrustLevel::Owner, Duration::from_secs(60));
        assert_eq!(p.join(at(60), ME, Some(&words)), Err(JoinError::NoOffer));
        assert_eq!(p.state(at(61)), PairingState::Closed("expired"));
    }
}
