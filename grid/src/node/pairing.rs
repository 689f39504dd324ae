//! Pairing by word code: `grid pair` on one node opens an offer with a fresh four-word
//! code (32 bits, [`crate::trust::pairing_code`]); `grid pair <node> <code>` on another
//! presents it with the built-in `grid/join` command. On a match the offering node gives
//! the joiner the offer's trust level and answers with its identity, which the joiner
//! then trusts in turn. An offer lasts a few minutes and allows [`PAIRING_TRIES`] wrong
//! codes, so guessing is hopeless.

use std::time::Duration;

use rns_core::{AddressHash, Instant};
use serde_json::{json, Value};

use super::Node;
use crate::commands::CommandError;
use crate::frame::ErrorCode;
use crate::trust::{parse_pairing_code, TrustLevel, PAIRING_CODE_WORDS};

/// Wrong codes an offer survives.
pub(crate) const PAIRING_TRIES: u8 = 3;
/// How long an offer stays open unless told otherwise.
pub(crate) const PAIRING_WINDOW: Duration = Duration::from_secs(300);

/// An open pairing offer.
#[derive(Debug, Clone)]
pub(crate) struct PairingOffer {
    code: [u8; PAIRING_CODE_WORDS],
    level: TrustLevel,
    expires: Instant,
    tries_left: u8,
}

/// How the latest offer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PairingState {
    /// No offer made yet.
    None,
    /// Open, waiting for the code.
    Waiting,
    /// Paired with this identity.
    Paired(AddressHash, TrustLevel),
    /// Expired or closed after too many wrong codes.
    Closed(&'static str),
}

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
        self.pairing = Some(PairingOffer {
            code,
            level,
            expires: now + window,
            tries_left: PAIRING_TRIES,
        });
        self.pairing_state = PairingState::Waiting;
        crate::trust::pairing_code_from_bytes(code)
    }

    /// Where the latest offer stands, as JSON.
    pub(super) fn pair_status(&mut self, now: Instant) -> Value {
        if self.pairing.as_ref().is_some_and(|o| now >= o.expires) {
            self.pairing = None;
            self.pairing_state = PairingState::Closed("expired");
        }
        match &self.pairing_state {
            PairingState::None => json!({"ok": true, "state": "none"}),
            PairingState::Waiting => json!({
                "ok": true, "state": "waiting",
                "expires_in_s": self.pairing.as_ref().map(|o| o.expires.saturating_since(now).as_secs()),
            }),
            PairingState::Paired(id, level) => json!({
                "ok": true, "state": "paired", "identity": id.to_string(), "level": level.as_str(),
            }),
            PairingState::Closed(why) => json!({"ok": true, "state": "closed", "reason": why}),
        }
    }

    /// `grid/join` from `caller` with `{"code": "…"}`.
    pub(super) fn pair_join(
        &mut self,
        now: Instant,
        caller: Option<AddressHash>,
        params: &Value,
    ) -> Result<Value, CommandError> {
        let caller = caller.ok_or_else(|| denied("identify on the link to pair"))?;
        let offer = match self.pairing.as_mut() {
            Some(o) if now < o.expires => o,
            _ => {
                return Err(denied(
                    "no pairing offer is open on this node (run `grid pair` there first)",
                ))
            }
        };
        let given = params
            .get("code")
            .and_then(Value::as_str)
            .and_then(parse_pairing_code);
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
                self.pairing = None;
                self.pairing_state = PairingState::Closed("too many wrong codes");
                tracing::warn!(%caller, "pairing offer closed after too many wrong codes");
            }
            return Err(denied("wrong pairing code"));
        }
        let level = offer.level;
        self.pairing = None;
        self.guard
            .trust
            .set(caller, level)
            .map_err(|e| CommandError::failed(e.to_string()))?;
        self.pairing_state = PairingState::Paired(caller, level);
        tracing::info!(%caller, level = level.as_str(), "paired");
        Ok(json!({"identity": self.identity.hash().to_string(), "level": level.as_str()}))
    }
}
