//! `grid pair` on the node: the offer and its checks are [`crate::proto::pairing`], the
//! join [`crate::proto::layer`]'s; here the code is drawn and the offer's state read.

use std::time::Duration;

use rns_core::Instant;

use super::Node;
use crate::control::response::PairStatus;
use crate::proto::pairing::PairingState;
use crate::trust::{TrustLevel, PAIRING_CODE_WORDS};

impl Node {
    /// Open a pairing offer granting `level` to whoever presents the code; returns it.
    pub(super) fn pair_offer(
        &mut self,
        now: Instant,
        level: TrustLevel,
        window: Duration,
    ) -> String {
        let mut code = [0u8; PAIRING_CODE_WORDS];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut code);
        self.grid.layer.pairing.offer(now, code, level, window)
    }

    /// Where the latest offer stands.
    pub(super) fn pair_status(&mut self, now: Instant) -> PairStatus {
        match self.grid.layer.pairing.state(now) {
            PairingState::Waiting(left) => PairStatus::Waiting {
                expires_in_s: left.as_secs(),
            },
            PairingState::Paired(identity, level) => PairStatus::Paired { identity, level },
            PairingState::Closed(why) => PairStatus::Closed {
                reason: why.to_string(),
            },
            PairingState::None => PairStatus::None,
        }
    }
}
