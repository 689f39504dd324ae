//! The node's commands in the catalog: a task reads the registered commands and their
//! ACL rules every [`CHECK`] and publishes what [`CommandOffers`] says is news (new,
//! changed, due again, or withdrawn), so peers learn who answers which command.

use std::time::Duration;

use crate::api::NodeHandle;
use crate::proto::command_offers::CommandOffers;

/// How often the commands are looked at.
pub(crate) const CHECK: Duration = Duration::from_secs(60);
/// Let the node's services register their commands before the first look.
const FIRST_LOOK: Duration = Duration::from_secs(5);

/// List the node's commands while it runs (a task of the node's; it ends with it).
pub(crate) async fn run(handle: NodeHandle) {
    let mut offers = CommandOffers::default();
    tokio::time::sleep(FIRST_LOOK).await;
    loop {
        let registered = match handle.registered_commands().await {
            Ok(r) => r,
            Err(_) => return,
        };
        for record in offers.due(&registered, crate::clock::wall_ms()) {
            match handle.catalog_publish(record.clone()).await {
                Ok(_) => offers.published(&record),
                Err(crate::Error::Stopped) => return,
                Err(e) => {
                    tracing::debug!(command = %record.name, error = %e, "could not list a command in the catalog")
                }
            }
        }
        tokio::time::sleep(CHECK).await;
    }
}
