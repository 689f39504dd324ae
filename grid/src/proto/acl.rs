//! Per-command access control: which [`TrustLevel`] a caller needs to run a command.
//!
//! An [`Acl`] is a table of rules. A rule's pattern is an exact command name
//! (`grid/pair`), a prefix ending in `/*` (`gpu/*`: every command under `gpu/`), a prefix
//! ending in `*` (`gen*`: every command starting with `gen`), or `*` (everything). The
//! most specific matching rule decides: an exact rule beats any prefix, and a longer
//! prefix beats a shorter one. A command no rule matches is denied, and a
//! [`TrustLevel::Blocked`] caller is denied everything.
//!
//! The node's built-in commands come with rules ([`BUILTIN_RULES`]); the `[acl]` table of
//! `config.toml` adds to and overrides them:
//!
//! ```toml
//! [acl]
//! "gpu/*" = "provisional"
//! "genome/train" = "trusted"
//! ```

use std::collections::BTreeMap;

use crate::commands::CommandError;
use crate::frame::names::{check_command, NameError, MAX_NAME};
use crate::frame::ErrorCode;
use crate::trust::TrustLevel;

/// The rules every node starts with: its read-only built-ins for any caller that is not
/// blocked, its status for trusted callers, and the commands that change whom the node
/// trusts for its owner only.
pub const BUILTIN_RULES: [(&str, TrustLevel); 8] = [
    ("grid/ping", TrustLevel::Provisional),
    // A caller cancels only its own commands (the node keys them by its identity).
    ("grid/cancel", TrustLevel::Provisional),
    // Pairing is how a stranger becomes trusted: the one-time code is its proof.
    (crate::commands::JOIN_COMMAND, TrustLevel::Provisional),
    ("list", TrustLevel::Provisional),
    ("grid/capabilities", TrustLevel::Provisional),
    ("grid/status", TrustLevel::Trusted),
    ("grid/pair", TrustLevel::Owner),
    ("grid/trust", TrustLevel::Owner),
];

/// Commands whose rule can never be lowered below owner: they decide who is trusted, so
/// delegating them would let a guest make itself owner.
pub const OWNER_ONLY: [&str; 2] = ["grid/pair", "grid/trust"];

/// The most rules an ACL holds.
pub const MAX_RULES: usize = 1024;

/// Why an ACL rule was refused; each names the rule's key as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The pattern is not a command name, prefix or `*`.
    #[error("acl.\"{key}\": not a command name or prefix: {source}")]
    BadPattern {
        /// The rule's key.
        key: String,
        /// What is wrong with the name.
        source: NameError,
    },
    /// The value is not a trust level.
    #[error("acl.\"{key}\": {reason}")]
    BadLevel {
        /// The rule's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// `blocked` is not a level a rule can require (blocked callers are always denied).
    #[error(
        "acl.\"{key}\": \"blocked\" cannot be required (blocked callers are always denied); \
         use \"provisional\" to allow every other caller or \"owner\" to keep it local"
    )]
    BlockedRule {
        /// The rule's key.
        key: String,
    },
    /// A rule tried to open an owner-only command ([`OWNER_ONLY`]) to other callers.
    #[error("acl.\"{key}\": must stay \"owner\" (it changes whom this node trusts)")]
    OwnerOnly {
        /// The rule's key.
        key: String,
    },
    /// More than [`MAX_RULES`] rules.
    #[error("acl: more than {MAX_RULES} rules")]
    TooMany,
}

/// Why a command was refused; it becomes an [`ErrorCode::Denied`] reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The caller is blocked.
    #[error("{command}: denied: the caller is blocked")]
    Blocked {
        /// The command asked for.
        command: String,
    },
    /// No rule matches the command (default deny).
    #[error("{command}: denied: no rule allows it (caller is {held})")]
    NoRule {
        /// The command asked for.
        command: String,
        /// The caller's level.
        held: TrustLevel,
    },
    /// A rule matches but requires more than the caller holds.
    #[error("{command}: denied by rule \"{rule}\": requires {required}, caller is {held}")]
    Insufficient {
        /// The command asked for.
        command: String,
        /// The rule that decided, as written.
        rule: String,
        /// The level the rule requires.
        required: TrustLevel,
        /// The caller's level.
        held: TrustLevel,
    },
}

impl From<Denied> for CommandError {
    fn from(d: Denied) -> CommandError {
        CommandError {
            code: ErrorCode::Denied,
            message: d.to_string(),
        }
    }
}

/// A command access-control table; see the module docs for how rules match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Exact command name → required level.
    exact: BTreeMap<String, TrustLevel>,
    /// Prefix (the pattern without its final `*`) → required level.
    prefix: BTreeMap<String, TrustLevel>,
}

impl Default for Acl {
    /// The built-in rules only.
    fn default() -> Acl {
        let mut acl = Acl::empty();
        for (pattern, level) in BUILTIN_RULES {
            acl.exact.insert(pattern.to_string(), level);
        }
        acl
    }
}

/// A pattern split into its kind and the text it matches on.
enum Pattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

/// Check a rule pattern and split it.
fn parse_pattern(key: &str) -> Result<Pattern<'_>, AclError> {
    let bad = |source| AclError::BadPattern {
        key: key.chars().take(160).collect(),
        source,
    };
    if key == "*" {
        return Ok(Pattern::Prefix(""));
    }
    if let Some(prefix) = key.strip_suffix('*') {
        let name = prefix.strip_suffix('/').unwrap_or(prefix);
        check_command(name).map_err(bad)?;
        return Ok(Pattern::Prefix(prefix));
    }
    check_command(key).map_err(bad)?;
    Ok(Pattern::Exact(key))
}

impl Acl {
    /// An ACL with no rules at all: it denies everything.
    pub fn empty() -> Acl {
        Acl {
            exact: BTreeMap::new(),
            prefix: BTreeMap::new(),
        }
    }

    /// The built-in rules ([`BUILTIN_RULES`]) plus `rules`, later rules replacing earlier
    /// ones with the same pattern.
    pub fn from_rules<I>(rules: I) -> Result<Acl, AclError>
    where
        I: IntoIterator<Item = (String, TrustLevel)>,
    {
        let mut acl = Acl::default();
        for (pattern, level) in rules {
            acl.insert(&pattern, level)?;
        }
        Ok(acl)
    }

    /// The built-in rules plus the rules of a config `[acl]` table (the table's contents:
    /// pattern keys, trust-level string values). Errors name the key at fault.
    pub fn from_table(table: &toml::Table) -> Result<Acl, AclError> {
        if table.len() > MAX_RULES {
            return Err(AclError::TooMany);
        }
        let mut acl = Acl::default();
        for (key, value) in table {
            let level = value
                .as_str()
                .ok_or_else(|| AclError::BadLevel {
                    key: key.chars().take(160).collect(),
                    reason: format!(
                        "expected a trust level string (provisional, trusted or owner), got a {}",
                        value.type_str()
                    ),
                })?
                .parse::<TrustLevel>()
                .map_err(|e| AclError::BadLevel {
                    key: key.chars().take(160).collect(),
                    reason: e.to_string(),
                })?;
            acl.insert(key, level)?;
        }
        Ok(acl)
    }

    /// Add or replace the rule for `pattern`. Refuses malformed patterns, `blocked` as a
    /// required level, lowering an [`OWNER_ONLY`] command, and more than [`MAX_RULES`]
    /// rules.
    pub fn insert(&mut self, pattern: &str, required: TrustLevel) -> Result<(), AclError> {
        let parsed = parse_pattern(pattern)?;
        if required == TrustLevel::Blocked {
            return Err(AclError::BlockedRule {
                key: pattern.to_string(),
            });
        }
        let total = self.exact.len() + self.prefix.len();
        let (map, text) = match parsed {
            Pattern::Exact(name) => {
                if OWNER_ONLY.contains(&name) && required != TrustLevel::Owner {
                    return Err(AclError::OwnerOnly {
                        key: pattern.to_string(),
                    });
                }
                (&mut self.exact, name)
            }
            Pattern::Prefix(prefix) => (&mut self.prefix, prefix),
        };
        if !map.contains_key(text) && total >= MAX_RULES {
            return Err(AclError::TooMany);
        }
        map.insert(text.to_string(), required);
        Ok(())
    }

    /// The rule that decides `command`, as (pattern as written, required level): its exact
    /// rule if there is one, else the longest matching prefix rule.
    /// An [`OWNER_ONLY`] command always requires owner, even under a prefix rule.
    pub fn rule_for(&self, command: &str) -> Option<(String, TrustLevel)> {
        let found = match self.exact.get(command) {
            Some(&level) => Some((command.to_string(), level)),
            None => (0..=command.len())
                .rev()
                .filter(|&i| command.is_char_boundary(i))
                .find_map(|i| self.prefix.get_key_value(&command[..i]))
                .map(|(prefix, &level)| (format!("{prefix}*"), level)),
        };
        found.map(|(rule, level)| match OWNER_ONLY.contains(&command) {
            true => (rule, TrustLevel::Owner),
            false => (rule, level),
        })
    }

    /// Whether a caller holding `held` may run `command`. Blocked callers, malformed
    /// command names and commands no rule matches are denied; otherwise the deciding rule's
    /// level must be at most `held`.
    pub fn check(&self, command: &str, held: TrustLevel) -> Result<(), Denied> {
        // The name may come from a hostile peer: keep what the error echoes short.
        let name = || command.chars().take(MAX_NAME).collect::<String>();
        if held == TrustLevel::Blocked {
            return Err(Denied::Blocked { command: name() });
        }
        let rule = match check_command(command) {
            Ok(()) => self.rule_for(command),
            Err(_) => None,
        };
        match rule {
            None => Err(Denied::NoRule {
                command: name(),
                held,
            }),
            Some((rule, required)) if held < required => Err(Denied::Insufficient {
                command: name(),
                rule,
                required,
                held,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Every rule as (pattern as written, required level): exact rules, then prefixes.
    pub fn rules(&self) -> impl Iterator<Item = (String, TrustLevel)> + '_ {
        let exact = self.exact.iter().map(|(n, &l)| (n.clone(), l));
        let prefix = self.prefix.iter().map(|(p, &l)| (format!("{p}*"), l));
        exact.chain(prefix)
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefix.len()
    }

    /// Whether there are no rules (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrustLevel::{Blocked, Owner, Provisional, Trusted};

    fn table(text: &str) -> toml::Table {
        let doc: toml::Table = text.parse().unwrap();
        doc["acl"].as_table().unwrap().clone()
    }

    #[test]
    fn builtins_have_default_rules_and_the_rest_is_denied() {
        let acl = Acl::default();
        assert!(acl.check("grid/ping", Provisional).is_ok());
        assert!(acl.check("list", Provisional).is_ok());
        assert!(acl.check("grid/capabilities", Provisional).is_ok());
        assert!(acl.check("grid/status", Provisional).is_err());
        assert!(acl.check("grid/status", Trusted).is_ok());
        assert!(acl.check("grid/pair", Trusted).is_err());
        assert!(acl.check("grid/trust", Owner).is_ok());
        assert_eq!(
            acl.check("gpu/stats", Owner),
            Err(Denied::NoRule {
                command: "gpu/stats".into(),
                held: Owner
            })
        );
        assert!(Acl::empty().check("grid/ping", Owner).is_err());
        assert_eq!(acl.len(), BUILTIN_RULES.len());
    }

    #[test]
    fn blocked_callers_are_always_denied() {
        let acl = Acl::from_rules([("*".to_string(), Provisional)]).unwrap();
        assert!(acl.check("anything", Provisional).is_ok());
        for cmd in ["anything", "grid/ping", "list"] {
            assert_eq!(
                acl.check(cmd, Blocked),
                Err(Denied::Blocked {
                    command: cmd.into()
                })
            );
        }
    }

    #[test]
    fn the_longest_match_wins_and_exact_beats_prefix() {
        let acl = Acl::from_table(&table(
            r#"
            [acl]
            "*" = "owner"
            "gpu/*" = "provisional"
            "gpu/admin/*" = "owner"
            "gpu/admin/stats" = "trusted"
            "gen*" = "trusted"
            "genome/train" = "owner"
            "#,
        ))
        .unwrap();
        let rule = |c: &str| acl.rule_for(c).unwrap();
        assert_eq!(rule("gpu/stats"), ("gpu/*".into(), Provisional));
        assert_eq!(rule("gpu/admin/reset"), ("gpu/admin/*".into(), Owner));
        assert_eq!(rule("gpu/admin/stats"), ("gpu/admin/stats".into(), Trusted));
        assert_eq!(rule("genome/search"), ("gen*".into(), Trusted));
        assert_eq!(rule("genome/train"), ("genome/train".into(), Owner));
        assert_eq!(rule("gpu"), ("*".into(), Owner), "gpu/* is only under gpu/");
        assert_eq!(rule("data/delete"), ("*".into(), Owner));
        assert_eq!(rule("grid/ping"), ("grid/ping".into(), Provisional));
        assert!(acl.check("gpu/stats", Provisional).is_ok());
        assert_eq!(
            acl.check("gpu/admin/reset", Trusted),
            Err(Denied::Insufficient {
                command: "gpu/admin/reset".into(),
                rule: "gpu/admin/*".into(),
                required: Owner,
                held: Trusted
            })
        );
        assert!(acl.check("gpu/admin/stats", Trusted).is_ok());
        let msg = acl.check("genome/train", Trusted).unwrap_err().to_string();
        assert!(
            msg.contains("genome/train") && msg.contains("owner"),
            "{msg}"
        );
        assert!(msg.contains("trusted"), "{msg}");
    }

    #[test]
    fn table_rules_override_builtins_but_not_owner_only() {
        let acl = Acl::from_table(&table("[acl]\n\"grid/status\" = \"provisional\"")).unwrap();
        assert!(acl.check("grid/status", Provisional).is_ok());
        let e = Acl::from_table(&table("[acl]\n\"grid/pair\" = \"trusted\"")).unwrap_err();
        assert_eq!(
            e,
            AclError::OwnerOnly {
                key: "grid/pair".into()
            }
        );
        // A prefix rule cannot open an owner-only command either.
        let mut acl = Acl::empty();
        acl.insert("grid/*", Provisional).unwrap();
        assert!(acl.check("grid/ping", Provisional).is_ok());
        assert!(acl.check("grid/trust", Trusted).is_err());
        assert!(acl.check("grid/trust", Owner).is_ok());
    }

    #[test]
    fn bad_rules_name_their_key() {
        let cases = [
            (r#""gpu stats" = "trusted""#, "gpu stats"),
            (r#""gpu//*" = "trusted""#, "gpu//*"),
            (r#""gpu**" = "trusted""#, "gpu**"),
            (r#""/*" = "trusted""#, "/*"),
            (r#""" = "trusted""#, ""),
            (r#""gpu/*" = "admin""#, "gpu/*"),
            (r#""gpu/*" = 3"#, "gpu/*"),
            (r#""gpu/*" = "blocked""#, "gpu/*"),
        ];
        for (line, key) in cases {
            let e = Acl::from_table(&table(&format!("[acl]\n{line}"))).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("acl.\"{key}\":")),
                "{line}: {e}"
            );
        }
        let e = Acl::from_table(&table("[acl]\n\"gpu/*\" = \"root\"")).unwrap_err();
        assert!(e.to_string().contains("provisional"), "{e}");
    }

    #[test]
    fn malformed_or_huge_commands_are_denied_not_matched() {
        let acl = Acl::from_rules([("*".to_string(), Provisional)]).unwrap();
        for cmd in ["", "a//b", "gpu/st ats", "ünï/code"] {
            assert!(
                matches!(acl.check(cmd, Owner), Err(Denied::NoRule { .. })),
                "{cmd:?}"
            );
        }
        let huge = "a".repeat(100_000);
        match acl.check(&huge, Owner) {
            Err(Denied::NoRule { command, .. }) => assert_eq!(command.len(), MAX_NAME),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rules_are_bounded_and_listed() {
        let mut acl = Acl::empty();
        for i in 0..MAX_RULES {
            acl.insert(&format!("c/{i}"), Trusted).unwrap();
        }
        assert_eq!(acl.insert("c/x", Trusted), Err(AclError::TooMany));
        acl.insert("c/0", Owner).unwrap();
        assert_eq!(acl.len(), MAX_RULES);

        let acl = Acl::from_rules([("gpu/*".to_string(), Provisional)]).unwrap();
        let rules: Vec<_> = acl.rules().collect();
        assert!(rules.contains(&("gpu/*".to_string(), Provisional)));
        assert!(rules.contains(&("grid/pair".to_string(), Owner)));
        assert_eq!(rules.len(), BUILTIN_RULES.len() + 1);
    }

    #[test]
    fn denials_become_denied_command_errors() {
        let e: CommandError = Acl::default().check("x/y", Trusted).unwrap_err().into();
        assert_eq!(e.code, ErrorCode::Denied);
        assert!(e.message.contains("x/y"));
    }
}
