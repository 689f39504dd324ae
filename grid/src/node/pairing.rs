//! `grid pair` on the node: the offer and its checks are [`crate::proto::pairing`], the
//! join [`crate::proto::layer`]'s; here the code is drawn and answers put as JSON.

use std::time::Duration;

use rns_core::Instant;
use serde_json::{json, Value};

use super::Node;
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

    /// Where the latest offer stands, as JSON.
    pub(super) fn pair_status(&mut self, now: Instant) -> Value {
        match self.grid.layer.pairing.state(now) {
            PairingState::Waiting(left) => json!({
                "ok": true, "state": "waiting", "expires_in_s": left.as_secs(),
            }),
            PairingState::Paired(id, level) => json!({
                "ok": true, "state": "paired", "identity": id.to_string(), "level": level.as_str(),
            }),
            PairingState::Closed(why) => json!({"ok": true, "state": "closed", "reason": why}),
            _ => json!({"ok": true, "state": "none"}),
        }
    }
}
