//! `grid pair` on the node: the offer and its checks are [`crate::proto::pairing`]; here
//! the code is drawn, the joiner's trust recorded, and answers put as JSON.

use std::time::Duration;

use rns_core::{AddressHash, Instant};
use serde_json::{json, Value};

use super::Node;
use crate::commands::CommandError;
use crate::frame::ErrorCode;
use crate::proto::pairing::{JoinError, PairingState};
use crate::trust::{TrustLevel, PAIRING_CODE_WORDS};

fn denied(message: impl Into<String>) -> CommandError {
    CommandError {
        code: ErrorCode::Denied,
        message: message.into(),
    }
}

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
        self.grid.pairing.offer(now, code, level, window)
    }

    /// Where the latest offer stands, as JSON.
    pub(super) fn pair_status(&mut self, now: Instant) -> Value {
        match self.grid.pairing.state(now) {
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

    /// `grid/join` from `caller` with `{"code": "…"}`.
    pub(super) fn pair_join(
        &mut self,
        now: Instant,
        caller: Option<AddressHash>,
        params: &Value,
    ) -> Result<Value, CommandError> {
        let code = params.get("code").and_then(Value::as_str);
        let level = match self.grid.pairing.join(now, caller, code) {
            Ok(level) => level,
            Err(e) => {
                if self.grid.pairing.state(now) == PairingState::Closed("too many wrong codes") {
                    tracing::warn!(?caller, "pairing offer closed after too many wrong codes");
                }
                return Err(denied(e.to_string()));
            }
        };
        let Some(caller) = caller else {
            return Err(denied(JoinError::Anonymous.to_string()));
        };
        self.guard
            .trust
            .set(caller, level)
            .map_err(|e| CommandError::failed(e.to_string()))?;
        tracing::info!(%caller, level = level.as_str(), "paired");
        Ok(json!({"identity": self.identity.hash().to_string(), "level": level.as_str()}))
    }
}
