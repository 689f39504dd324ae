//! Which commands a node lists in the catalog, and when: the commands registered on it
//! that peers may call (their ACL rule admits provisional or trusted callers), so that
//! catalog gossip tells the nodes around who answers, say, `ai/generate` or
//! `weather/forecast`. Left out: the built-in commands and those of the services every
//! Grid node runs ([`COMMON_PREFIXES`]) — they are no news — and commands only the owner
//! may call.
//!
//! Each listed command is one entry (kind `command`, its name, its description's first
//! [`MAX_SUMMARY`] bytes; no embedding sketch: searches match its words). An entry is
//! published when a command appears or its description changes, again every
//! [`REPUBLISH`] so it never lapses, and withdrawn with a tombstone when the command is
//! gone or closed to peers. Sans-IO: the node's task feeds it the current commands and
//! the wall clock and publishes what it returns.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::flood::sketch::Sketch;
use crate::proto::gossip::entry::{Body, Record, MAX_NAME, MAX_SUMMARY};
use crate::trust::TrustLevel;

/// Prefixes of the commands every Grid node's own services register.
pub const COMMON_PREFIXES: [&str; 4] = ["grid/", "genome/", "sentinel/", "governor/"];
/// How long a command entry is valid.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often listed commands are published again.
pub const REPUBLISH: Duration = Duration::from_secs(24 * 3600);
/// Commands one node lists at most (the catalog bounds each publisher too).
pub const MAX_LISTED: usize = 64;

/// A registered command as the node sees it: its name, description and the lowest
/// trust level its ACL rule admits (`None`: no rule, denied to peers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// `domain/action`.
    pub name: String,
    /// Its one-line description.
    pub description: String,
    /// Who may call it.
    pub level: Option<TrustLevel>,
}

/// Whether peers should hear of `c` from the catalog.
#[must_use]
pub fn listed(c: &Registered) -> bool {
    let open = matches!(c.level, Some(TrustLevel::Provisional | TrustLevel::Trusted));
    open && c.name.len() <= MAX_NAME
        && c.name != "list"
        && !COMMON_PREFIXES.iter().any(|p| c.name.starts_with(p))
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The entry for command `name` with `description`.
#[must_use]
pub fn record(name: &str, description: &str, now_ms: u64, tombstone: bool) -> Record {
    Record {
        seq: now_ms,
        expires_ms: now_ms + ENTRY_LIFETIME.as_millis() as u64,
        tombstone,
        name: name.to_string(),
        summary: cut(description, MAX_SUMMARY),
        body: Body::Command {
            sketch: Sketch([0; 48]),
        },
    }
}

/// What this node has listed, and when.
#[derive(Debug, Default)]
pub struct CommandOffers {
    /// Listed name → (description, when published, ms).
    published: BTreeMap<String, (String, u64)>,
}

impl CommandOffers {
    /// The records to publish now, given the registered commands: new or changed ones,
    /// ones due again, and tombstones for those no longer listed. Call
    /// [`Self::published`] for each that was published.
    #[must_use]
    pub fn due(&self, registered: &[Registered], now_ms: u64) -> Vec<Record> {
        let wanted: BTreeMap<&str, &str> = registered
            .iter()
            .filter(|c| listed(c))
            .take(MAX_LISTED)
            .map(|c| (c.name.as_str(), c.description.as_str()))
            .collect();
        let mut out = Vec::new();
        for (name, description) in &wanted {
            let fresh = match self.published.get(*name) {
                None => true,
                Some((d, at)) => {
                    d != description || now_ms.saturating_sub(*at) >= REPUBLISH.as_millis() as u64
                }
            };
            if fresh {
                out.push(record(name, description, now_ms, false));
            }
        }
        for (name, (description, _)) in &self.published {
            if !wanted.contains_key(name.as_str()) {
                out.push(record(name, description, now_ms, true));
            }
        }
        out
    }

    /// `r` was published.
    pub fn published(&mut self, r: &Record) {
        if r.tombstone {
            self.published.remove(&r.name);
        } else {
            self.published
                .insert(r.name.clone(), (r.summary.clone(), r.seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str, level: Option<TrustLevel>) -> Registered {
        Registered {
            name: name.into(),
            description: format!("does {name}"),
            level,
        }
    }

    fn publish(o: &mut CommandOffers, registered: &[Registered], now: u64) -> Vec<String> {
        let due = o.due(registered, now);
        for r in &due {
            o.published(r);
        }
        due.iter()
            .map(|r| format!("{}{}", if r.tombstone { "-" } else { "+" }, r.name))
            .collect()
    }

    #[test]
    fn only_commands_peers_may_call_are_listed_and_changes_are_published_once() {
        let mut o = CommandOffers::default();
        let mut regs = vec![
            cmd("ai/generate", Some(TrustLevel::Trusted)),
            cmd("weather/forecast", Some(TrustLevel::Provisional)),
            cmd("home/unlock", Some(TrustLevel::Owner)),
            cmd("secret/thing", None),
            cmd("genome/search", Some(TrustLevel::Provisional)),
            cmd("grid/ping", Some(TrustLevel::Provisional)),
        ];
        assert_eq!(
            publish(&mut o, &regs, 1_000),
            vec!["+ai/generate", "+weather/forecast"]
        );
        assert!(publish(&mut o, &regs, 2_000).is_empty(), "nothing new");
        // A changed description, a command closed to peers: one update, one tombstone.
        regs[0].description = "generate text, adapters applied".into();
        regs[1].level = Some(TrustLevel::Owner);
        assert_eq!(
            publish(&mut o, &regs, 3_000),
            vec!["+ai/generate", "-weather/forecast"]
        );
        assert!(publish(&mut o, &regs, 4_000).is_empty());
        // A day on, the listed one is published again so it never lapses.
        let day = REPUBLISH.as_millis() as u64;
        assert_eq!(publish(&mut o, &regs, 3_000 + day), vec!["+ai/generate"]);
    }

    #[test]
    fn records_fit_the_entry_and_are_bounded_in_number() {
        let r = record("x/y", &"é".repeat(200), 5, false);
        assert!(r.summary.len() <= MAX_SUMMARY && r.summary.chars().all(|c| c == 'é'));
        assert_eq!(r.expires_ms, 5 + ENTRY_LIFETIME.as_millis() as u64);
        let regs: Vec<Registered> = (0..200)
            .map(|i| cmd(&format!("app/c{i:03}"), Some(TrustLevel::Trusted)))
            .collect();
        assert_eq!(CommandOffers::default().due(&regs, 1).len(), MAX_LISTED);
    }
}
