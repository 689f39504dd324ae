//! `grid audit`: the last entries of the audit log (read from the state directory).

use std::time::Duration;

use anyhow::{anyhow, Result};
use grid::state::StateDir;

/// `grid audit`
pub(crate) fn audit(state: &StateDir, limit: usize, json_out: bool) -> Result<()> {
    let entries = grid::audit::read_last(&state.audit_path(), limit)
        .map_err(|e| anyhow!("cannot read the audit log: {e}"))?;
    for e in entries {
        if json_out {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            println!(
                "{}  {:<3} {}  {}  {:016x}  {:?}  {} ms",
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_millis(e.time_ms)
                ),
                format!("{:?}", e.direction).to_lowercase(),
                e.peer,
                e.command,
                e.correlation,
                e.outcome,
                e.duration_ms
            );
        }
    }
    Ok(())
}
