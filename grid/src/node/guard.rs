//! Who may do what on this node, and the record of what was done: the trust store, the
//! ACL and the audit log (with a rate limit on records of refused frames). Records are
//! appended by the audit writer thread ([`super::audit_writer`]), off the event loop.

use std::time::Duration;

use rns_core::{AddressHash, Instant};

use super::audit_writer::AuditWriter;
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
    /// The writer of the audit log of remote commands (none if it cannot be written).
    audit: Option<AuditWriter>,
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
        let opened = crate::audit::AuditLog::open(&state.audit_path())
            .map_err(|e| e.to_string())
            .and_then(|log| {
                AuditWriter::start(log)
                    .map_err(|e| format!("cannot start the audit writer thread: {e}"))
            });
        let audit = match opened {
            Ok(w) => Some(w),
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

    /// Record a remote command: hand it to the audit writer, never waiting. Records of
    /// refused frames (denied, duplicates) are rate limited per peer and per node; what is
    /// left out (by the rate limit, or because the writer's queue is full) is counted in
    /// the node's log.
    pub(crate) fn record(&mut self, entry: crate::audit::AuditEntry) {
        use crate::audit::Outcome;
        let now = clock::now();
        if matches!(entry.outcome, Outcome::Denied | Outcome::Duplicate) {
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
        if let Some(writer) = self.audit.as_mut() {
            writer.submit(now, entry);
        }
    }

    /// Stop the audit writer once every record handed to it is written (on a clean stop;
    /// the wait runs on a blocking thread, not on the loop).
    pub(crate) async fn close_audit(&mut self) {
        if let Some(writer) = self.audit.take() {
            if tokio::task::spawn_blocking(move || writer.close())
                .await
                .is_err()
            {
                tracing::error!("could not wait for the audit writer");
            }
        }
    }
}
