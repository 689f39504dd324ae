//! The catalog through the API: publish this node's entries (signed with its identity)
//! and read what catalog gossip has brought (see [`crate::proto::gossip`] and
//! `docs/discovery.md`).

use crate::proto::gossip::entry::{Digest, Entry, Record};
use crate::Error;

use super::{Call, NodeHandle};

impl NodeHandle {
    /// Sign `record` with this node's identity and publish it to the catalog; it spreads
    /// to the neighbours (Grid nodes one hop away on fast interfaces) by gossip. A record
    /// with the same kind and name and a higher `seq` replaces an earlier one; one with
    /// `tombstone` set withdraws it. Returns the entry's digest.
    pub async fn catalog_publish(&self, record: Record) -> Result<Digest, Error> {
        self.ask(|tx| Call::CatalogPublish(record, tx)).await?
    }

    /// The commands registered on this node (built-ins aside), each with the lowest
    /// trust level its ACL rule admits (`None`: no rule, so peers are denied).
    pub async fn registered_commands(
        &self,
    ) -> Result<Vec<crate::proto::command_offers::Registered>, Error> {
        self.ask(Call::Commands).await
    }

    /// The entries in this node's catalog: its own and those gossip brought (withdrawn
    /// ones left out). Each was signed by its publisher and checked on arrival.
    pub async fn catalog(&self) -> Result<Vec<Entry>, Error> {
        self.ask(Call::Catalog).await
    }
}
