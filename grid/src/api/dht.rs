//! The DHT through the API: announce that this node provides a key, and find who
//! provides one (see [`crate::proto::dht`] and `docs/discovery.md`).

use crate::node::dht::DhtLookup;
use crate::proto::dht::key::Key;
use crate::proto::dht::lookup::Outcome;
use crate::Error;

use super::{Call, NodeHandle};

impl NodeHandle {
    /// Tell the nodes nearest to `key` in the DHT that this node provides it (republished
    /// every 12 h while the node runs). The outcome's `closest` are the nodes told.
    pub async fn dht_provide(&self, key: Key) -> Result<Outcome, Error> {
        self.ask(|tx| Call::DhtLookup(key, DhtLookup::Provide, tx))
            .await?
    }

    /// Stop providing `key`: it is no longer republished. (Records already stored on
    /// other nodes stay until their TTL, 48 h, runs out; the DHT has no way to withdraw
    /// them, so a fetcher may still be sent here and be told the key is not here.)
    pub async fn dht_unprovide(&self, key: Key) -> Result<(), Error> {
        self.calls
            .send(Call::DhtUnprovide(key))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Find up to `want` providers of `key` through the DHT. The outcome's `providers`
    /// are their contacts (identity hash and public key; their `grid.node` destination
    /// follows from the key), `hops` the round they were found in.
    pub async fn dht_find_providers(&self, key: Key, want: usize) -> Result<Outcome, Error> {
        self.ask(|tx| Call::DhtLookup(key, DhtLookup::Find(want.max(1)), tx))
            .await?
    }
}
