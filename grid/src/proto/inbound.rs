//! What a node does with a GridFrame another node sent it: the checks in order, and the
//! verdict, without IO.
//!
//! The order matters and is fixed here:
//! 1. a **blocked** caller gets nothing at all, not even a refusal (only an audit record);
//! 2. a caller that did **not identify** may run only [`ANONYMOUS_COMMANDS`];
//! 3. the **ACL** must allow the command at the caller's trust level;
//! 4. **subscriptions** are kept per link (never for a frame that came in a bundle);
//! 5. anything but a request is refused as malformed;
//! 6. a request whose **TTL** ran out on the way is refused (by this node's clock, with
//!    the frame's own allowance for clocks that disagree);
//! 7. the **request log** runs each request at most once: a copy joins the running one,
//!    gets the kept answer, or is told it already ran.
//!
//! Only then is the command run (by the driver: built-ins, pairing, or a registered
//! handler), and its answer goes through [`Inbound::finish`].

use rns_core::link::LinkId;
use rns_core::AddressHash;

use super::request_log::{Admit, RequestKey, RequestLog};
use super::subscriptions::Subscriptions;
use crate::acl::Acl;
use crate::audit::Outcome as Audit;
use crate::commands::ANONYMOUS_COMMANDS;
use crate::frame::{Body, ErrorCode, GridFrame, Outcome};
use crate::trust::TrustLevel;

/// The ACL name subscriptions are checked under.
pub const SUBSCRIBE_COMMAND: &str = "grid/subscribe";

/// Who sent a frame, as far as this node knows.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    /// The identity the caller proved on its link or by sealing its bundle; `None` for a
    /// caller that did not identify.
    pub caller: Option<AddressHash>,
    /// The caller's trust level here (the default level for one that did not identify).
    pub level: TrustLevel,
    /// The link the frame came on; `None` for a frame that came in a bundle.
    pub link: Option<LinkId>,
}

/// What to do with a frame.
#[derive(Debug)]
#[must_use]
pub enum Verdict<R> {
    /// Say nothing; record `audit` if anything.
    Drop {
        /// The audit record's outcome, if the frame is worth one.
        audit: Option<Audit>,
    },
    /// Send `response` to `to` (and record `audit`, if any).
    Answer {
        /// Where the answer goes.
        to: R,
        /// The answer.
        response: GridFrame,
        /// The audit record's outcome, if the frame is worth one.
        audit: Option<Audit>,
    },
    /// Run the request; its answer goes through [`Inbound::finish`] under `key`.
    Run {
        /// The request's key in the request log.
        key: RequestKey,
        /// Where the answer goes.
        to: R,
    },
}

/// The grid layer's handling of inbound frames: the request log and the subscriptions
/// they change.
#[derive(Debug)]
pub struct Inbound<R> {
    /// Requests accepted recently, so each runs at most once.
    pub requests: RequestLog<R>,
    /// Remote subscriptions to this node's events.
    pub subscriptions: Subscriptions,
}

impl<R> Default for Inbound<R> {
    fn default() -> Self {
        Inbound {
            requests: RequestLog::default(),
            subscriptions: Subscriptions::default(),
        }
    }
}

/// The name a frame is checked and audited under.
pub fn command_name(frame: &GridFrame) -> &str {
    match &frame.body {
        Body::Request { command, .. } => command,
        Body::Subscribe { .. } | Body::Unsubscribe { .. } => SUBSCRIBE_COMMAND,
        _ => "-",
    }
}

fn refusal(frame: &GridFrame, code: ErrorCode, message: String, now_ms: u64) -> GridFrame {
    frame.respond(Outcome::Err { code, message }, now_ms)
}

impl<R> Inbound<R> {
    /// Check `frame` from `sender` against trust, the ACL, its TTL and the request log
    /// (see the module docs for the order). `mono_ms` is the node's monotonic clock (for
    /// the request log), `wall_ms` its wall clock (for frame timestamps).
    pub fn handle(
        &mut self,
        mono_ms: u64,
        wall_ms: u64,
        acl: &Acl,
        sender: Sender,
        frame: &GridFrame,
        to: R,
    ) -> Verdict<R> {
        if sender.level == TrustLevel::Blocked {
            return Verdict::Drop {
                audit: Some(Audit::Denied),
            };
        }
        if let Some((response, audit)) = self.check(wall_ms, acl, sender, frame) {
            return Verdict::Answer {
                to,
                response,
                audit,
            };
        }
        let key = RequestKey {
            caller: sender
                .caller
                .map_or_else(|| sender.link.map_or([0; 16], |l| l.0), |c| c.0),
            correlation: frame.correlation,
        };
        let expires = (frame.ttl_ms != 0).then(|| frame.timestamp_ms.saturating_add(frame.ttl_ms));
        let keep_ms = expires.map(|e| e.saturating_sub(wall_ms));
        match self.requests.admit(mono_ms, key, keep_ms, to) {
            Admit::Run(to) => Verdict::Run { key, to },
            Admit::Joined => Verdict::Drop {
                audit: Some(Audit::Duplicate),
            },
            Admit::Answer(response, to) => Verdict::Answer {
                to,
                response: *response,
                audit: Some(Audit::Duplicate),
            },
            Admit::Forgotten(to) => {
                let message = format!(
                    "request {:016x} already ran here; its result is no longer kept",
                    frame.correlation
                );
                Verdict::Answer {
                    to,
                    response: refusal(frame, ErrorCode::Replayed, message, wall_ms),
                    audit: Some(Audit::Duplicate),
                }
            }
        }
    }

    /// The checks before the request log (2 to 6 in the module docs): the answer for a
    /// frame that fails one, or `None` for a request to admit.
    fn check(
        &mut self,
        wall_ms: u64,
        acl: &Acl,
        sender: Sender,
        frame: &GridFrame,
    ) -> Option<(GridFrame, Option<Audit>)> {
        let name = command_name(frame);
        if sender.caller.is_none()
            && matches!(frame.body, Body::Request { .. } | Body::Subscribe { .. })
            && !ANONYMOUS_COMMANDS.contains(&name)
        {
            let message = format!(
                "identify on the link first: callers that did not identify may run only {}",
                ANONYMOUS_COMMANDS.join(", ")
            );
            let f = refusal(frame, ErrorCode::Denied, message, wall_ms);
            return Some((f, Some(Audit::Denied)));
        }
        if let Err(denied) = acl.check(name, sender.level) {
            let f = refusal(frame, ErrorCode::Denied, denied.to_string(), wall_ms);
            return Some((f, Some(Audit::Denied)));
        }
        let subscription = match &frame.body {
            Body::Subscribe { pattern } => Some((pattern, true)),
            Body::Unsubscribe { pattern } => Some((pattern, false)),
            _ => None,
        };
        if let Some((pattern, on)) = subscription {
            let Some(link) = sender.link else {
                let message = "subscriptions need a link, not a bundle".to_string();
                return Some((
                    refusal(frame, ErrorCode::Unsupported, message, wall_ms),
                    None,
                ));
            };
            if !on {
                self.subscriptions.unsubscribe(link, Some(pattern));
            } else if let Err(e) = self.subscriptions.subscribe(link, sender.caller, pattern) {
                let f = refusal(frame, ErrorCode::Failed, e.to_string(), wall_ms);
                return Some((f, Some(Audit::Error)));
            }
            let ok = frame.respond(Outcome::Ok(b"null".to_vec()), wall_ms);
            return Some((ok, Some(Audit::Success)));
        }
        if !matches!(frame.body, Body::Request { .. }) {
            let message = "only requests and subscriptions are answered on this path".into();
            return Some((refusal(frame, ErrorCode::Malformed, message, wall_ms), None));
        }
        if frame.expired_on_arrival(wall_ms) {
            let message = "the request's TTL ran out before it arrived".into();
            return Some((refusal(frame, ErrorCode::Timeout, message, wall_ms), None));
        }
        None
    }

    /// A request finished with `response`: kept in the request log. Returns where else
    /// it must go (copies that arrived while it ran), besides the first copy's `to`.
    pub fn finish(&mut self, key: &RequestKey, response: &GridFrame) -> Vec<R> {
        self.requests.finish(key, response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn request(command: &str, correlation: u64) -> GridFrame {
        GridFrame {
            correlation,
            source: [1; 16],
            target: [2; 16],
            timestamp_ms: NOW,
            ttl_ms: 0,
            body: Body::Request {
                command: command.into(),
                params: Vec::new(),
            },
        }
    }

    fn sender(level: TrustLevel) -> Sender {
        Sender {
            caller: Some(AddressHash([1; 16])),
            level,
            link: Some(AddressHash([9; 16])),
        }
    }

    fn refused(v: Verdict<u8>) -> (ErrorCode, Option<Audit>) {
        match v {
            Verdict::Answer {
                response:
                    GridFrame {
                        body: Body::Response(Outcome::Err { code, .. }),
                        ..
                    },
                audit,
                ..
            } => (code, audit),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn blocked_callers_get_nothing_but_an_audit_record() {
        let mut inbound = Inbound::default();
        let v = inbound.handle(
            0,
            NOW,
            &Acl::default(),
            sender(TrustLevel::Blocked),
            &request("grid/ping", 1),
            0u8,
        );
        assert!(matches!(
            v,
            Verdict::Drop {
                audit: Some(Audit::Denied)
            }
        ));
    }

    #[test]
    fn anonymous_callers_run_only_the_anonymous_commands() {
        let mut inbound = Inbound::default();
        let acl = Acl::default();
        let anon = Sender {
            caller: None,
            ..sender(TrustLevel::Provisional)
        };
        let v = inbound.handle(0, NOW, &acl, anon, &request("grid/status", 1), 0u8);
        assert_eq!(refused(v), (ErrorCode::Denied, Some(Audit::Denied)));
        let v = inbound.handle(0, NOW, &acl, anon, &request("grid/ping", 2), 0u8);
        assert!(matches!(v, Verdict::Run { .. }));
    }

    #[test]
    fn the_acl_decides_by_trust_level() {
        let mut inbound = Inbound::default();
        let mut acl = Acl::default();
        acl.insert("train/*", TrustLevel::Trusted).unwrap();
        let v = inbound.handle(
            0,
            NOW,
            &acl,
            sender(TrustLevel::Provisional),
            &request("train/run", 1),
            0u8,
        );
        assert_eq!(refused(v), (ErrorCode::Denied, Some(Audit::Denied)));
        let v = inbound.handle(
            0,
            NOW,
            &acl,
            sender(TrustLevel::Trusted),
            &request("train/run", 2),
            0u8,
        );
        assert!(matches!(v, Verdict::Run { .. }));
    }

    #[test]
    fn expired_requests_and_non_requests_are_refused() {
        let mut inbound = Inbound::default();
        let acl = Acl::default();
        let mut old = request("grid/ping", 1);
        old.timestamp_ms = NOW - 3 * 3600 * 1000;
        old.ttl_ms = 1000;
        let v = inbound.handle(0, NOW, &acl, sender(TrustLevel::Owner), &old, 0u8);
        assert_eq!(refused(v), (ErrorCode::Timeout, None));
        let mut event = request("grid/ping", 2);
        event.body = Body::Event {
            event: "x".into(),
            payload: Vec::new(),
        };
        // Only requests and subscriptions have a command name the ACL can allow.
        let v = inbound.handle(0, NOW, &acl, sender(TrustLevel::Owner), &event, 0u8);
        assert_eq!(refused(v), (ErrorCode::Denied, Some(Audit::Denied)));
    }

    #[test]
    fn a_request_runs_once_and_copies_get_its_answer() {
        let mut inbound = Inbound::default();
        let acl = Acl::default();
        let s = sender(TrustLevel::Provisional);
        let frame = request("grid/ping", 42);
        let Verdict::Run { key, to } = inbound.handle(0, NOW, &acl, s, &frame, 1u8) else {
            panic!("the first copy runs");
        };
        assert_eq!(to, 1);
        // A copy while it runs joins; it is answered when the first finishes.
        let v = inbound.handle(1, NOW, &acl, s, &frame, 2u8);
        assert!(matches!(
            v,
            Verdict::Drop {
                audit: Some(Audit::Duplicate)
            }
        ));
        let answer = frame.respond(Outcome::Ok(b"true".to_vec()), NOW);
        assert_eq!(inbound.finish(&key, &answer), vec![2]);
        // A copy afterwards gets the kept answer.
        match inbound.handle(2, NOW, &acl, s, &frame, 3u8) {
            Verdict::Answer {
                to: 3,
                response,
                audit: Some(Audit::Duplicate),
            } => {
                assert_eq!(response, answer)
            }
            other => panic!("{other:?}"),
        }
        // Another caller's request with the same correlation id is its own.
        let other = Sender {
            caller: Some(AddressHash([5; 16])),
            ..s
        };
        assert!(matches!(
            inbound.handle(3, NOW, &acl, other, &frame, 4u8),
            Verdict::Run { .. }
        ));
    }

    #[test]
    fn subscriptions_need_a_link_and_are_bounded() {
        let mut inbound = Inbound::default();
        let mut acl = Acl::default();
        acl.insert(SUBSCRIBE_COMMAND, TrustLevel::Provisional)
            .unwrap();
        let mut sub = request("-", 1);
        sub.body = Body::Subscribe {
            pattern: "sensor:*".into(),
        };
        let bundled = Sender {
            link: None,
            ..sender(TrustLevel::Provisional)
        };
        let v = inbound.handle(0, NOW, &acl, bundled, &sub, 0u8);
        assert_eq!(refused(v), (ErrorCode::Unsupported, None));
        let v = inbound.handle(0, NOW, &acl, sender(TrustLevel::Provisional), &sub, 0u8);
        assert!(matches!(
            v,
            Verdict::Answer {
                audit: Some(Audit::Success),
                ..
            }
        ));
        assert_eq!(
            inbound.subscriptions.matching("sensor:t"),
            vec![AddressHash([9; 16])]
        );
        for i in 0..super::super::subscriptions::PER_LINK - 1 {
            sub.body = Body::Subscribe {
                pattern: format!("p{i}"),
            };
            let _ = inbound.handle(0, NOW, &acl, sender(TrustLevel::Provisional), &sub, 0u8);
        }
        let v = inbound.handle(0, NOW, &acl, sender(TrustLevel::Provisional), &sub, 0u8);
        assert!(
            matches!(
                v,
                Verdict::Answer {
                    audit: Some(Audit::Success),
                    ..
                }
            ),
            "an existing pattern is fine"
        );
        sub.body = Body::Subscribe {
            pattern: "one-more".into(),
        };
        let v = inbound.handle(0, NOW, &acl, sender(TrustLevel::Provisional), &sub, 0u8);
        assert_eq!(refused(v), (ErrorCode::Failed, Some(Audit::Error)));
        sub.body = Body::Unsubscribe {
            pattern: "sensor:*".into(),
        };
        let _ = inbound.handle(0, NOW, &acl, sender(TrustLevel::Provisional), &sub, 0u8);
        assert!(inbound.subscriptions.matching("sensor:t").is_empty());
    }
}
