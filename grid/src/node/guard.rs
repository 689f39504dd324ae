//! Who may do what on this node, and the record of what was done: the trust store, the
//! ACL and the audit log (with a rate limit on records of refused frames).

use std::time::Duration;

use rns_core::{AddressHash, Instant};

use super::NodeError;
use crate::clock;
use crate::config::Config;
use crate::state::StateDir;

/// Who may do what here, and the record of what was done.
pub(crate) struct Guard {
    /// Trust levels of other identities.
    pub(crate) trust: crate::trust::TrustStore,
    /// Command rules.
    pub(crate) acl: crate::acl::Acl,
    /// The audit log of remote commands (none if it cannot be written).
    pub(crate) audit: Option<crate::audit::AuditLog>,
    /// How many records of refused frames a peer may add (so a flood of frames that are
    /// refused anyway cannot rotate the log's history away), and how many were left out.
    refusals: crate::proto::rate_limit::Limiter,
    refusals_dropped: u64,
    refusals_reported: Option<Instant>,
}

/// Audit records of refused frames: per peer 20 at once then 10 a second; all peers
/// that did not identify together the same; 100 then 50 a second for the node.
const REFUSAL_RECORDS: crate::proto::rate_limit::Limits = crate::proto::rate_limit::Limits {
    caller: crate::proto::rate_limit::Rate::new(20, Duration::from_millis(100)),
    anonymous: crate::proto::rate_limit::Rate::new(20, Duration::from_millis(100)),
    node: crate::proto::rate_limit::Rate::new(100, Duration::from_millis(20)),
};

impl Guard {
    pub(super) fn load(
        state: &StateDir,
        config: &Config,
        own: AddressHash,
    ) -> Result<Guard, NodeError> {
        let mut trust = crate::trust::TrustStore::load(&state.trust_path())?;
        trust.set_own_identity(own);
        let mut acl = config.acl.clone();
        if acl
            .rule_for(crate::proto::inbound::SUBSCRIBE_COMMAND)
            .is_none()
        {
            let _ = acl.insert(
                crate::proto::inbound::SUBSCRIBE_COMMAND,
                crate::trust::TrustLevel::Provisional,
            );
        }
        let audit = match crate::audit::AuditLog::open(&state.audit_path()) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the audit log; remote commands go unrecorded");
                None
            }
        };
        Ok(Guard {
            trust,
            acl,
            audit,
            refusals: crate::proto::rate_limit::Limiter::new(
                "audit records of refused frames",
                REFUSAL_RECORDS,
                clock::now(),
            ),
            refusals_dropped: 0,
            refusals_reported: None,
        })
    }

    /// Record a remote command. Records of refused frames (denied, duplicates) are rate
    /// limited per peer and per node; what is left out is counted in the node's log.
    pub(crate) fn record(&mut self, entry: &crate::audit::AuditEntry) {
        use crate::audit::Outcome;
        if matches!(entry.outcome, Outcome::Denied | Outcome::Duplicate) {
            let now = clock::now();
            let peer = entry.peer.parse::<AddressHash>().ok();
            if self.refusals.admit(peer, now).is_err() {
                self.refusals_dropped += 1;
                let due = self
                    .refusals_reported
                    .is_none_or(|t| now.saturating_since(t) >= Duration::from_secs(10));
                if due {
                    tracing::warn!(
                        left_out = self.refusals_dropped,
                        "audit log: refused frames arrive faster than they are recorded; some records left out"
                    );
                    self.refusals_reported = Some(now);
                }
                return;
            }
        }
        if let Some(log) = self.audit.as_mut() {
            if let Err(e) = log.append(entry) {
                tracing::warn!(error = %e, "cannot append to the audit log");
            }
        }
    }
}
