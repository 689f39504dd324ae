//! Flood search through the API: offer items to searches from other nodes, and search the
//! neighbourhood (see [`crate::proto::flood`] and `docs/discovery.md`).

use crate::proto::flood::sketch::{Item, Query};
use crate::proto::flood::{Outcome, Patience};
use crate::Error;

use super::{Call, NodeHandle};

impl NodeHandle {
    /// Answer flood searches that match `item` (replacing an item with the same id).
    /// Offered items are this node's own: a hit names this node as the holder.
    pub async fn search_offer(&self, item: Item) -> Result<(), Error> {
        self.calls
            .send(Call::SearchOffer(item.id, Some(item)))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Stop answering flood searches with the item `id`.
    pub async fn search_withdraw(&self, id: [u8; 16]) -> Result<(), Error> {
        self.calls
            .send(Call::SearchOffer(id, None))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Flood `query` through the neighbours (Grid nodes one hop away on fast interfaces,
    /// and theirs, as far as `patience` allows), ending at `want` hits (1 to 20) or the
    /// patience's time. Hits are the holders' word (item id, holder identity hash, their
    /// score): check what they name before trusting it.
    pub async fn flood_search(
        &self,
        query: Query,
        patience: Patience,
        want: u8,
    ) -> Result<Outcome, Error> {
        self.ask(|tx| Call::FloodSearch(query, patience, want, tx))
            .await?
    }
}
