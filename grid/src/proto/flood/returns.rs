//! Budget given back by leaves: a node with no neighbour but the one a query came from
//! returns the budget it cannot use ([`Body::Return`]); its neighbour gathers returns for
//! [`Config::regather`](super::Config::regather), then places the budget on neighbours
//! the query has not been to, or tops up the branches that gave none back (a query
//! flagged `top_up`). Without it, random fan-out spends a query's budget on whichever
//! leaves it happens to pick, and a query rarely crosses a backbone of transport nodes
//! with leaves hanging off them (docs/discovery.md).

use rns_core::Instant;

use super::message::{Body, Message, QueryId, Search};
use super::{Flood, Peer, Transmit};

impl Flood {
    /// Place `search.budget` of query `id`, not with `also_skip`: on neighbours the query
    /// has not been to; failing those, as a top-up on the ones it went to that gave none
    /// back (branches that may use more: they pass it on as for a query seen again).
    /// Returns what could not be placed.
    pub(super) fn place(&mut self, id: QueryId, search: Search, also_skip: Peer) -> u16 {
        let Some(e) = self.seen.get(&id) else {
            return search.budget;
        };
        let mut skip = e.forwarded_to.clone();
        skip.push(also_skip);
        skip.extend(e.from);
        let budget = search.budget;
        let unplaced = self.forward(id, search.clone(), &skip, budget);
        let Some(e) = self.seen.get(&id).filter(|_| unplaced > 0) else {
            return unplaced;
        };
        let mut spent: Vec<Peer> = e
            .forwarded_to
            .iter()
            .zip(&e.budget_to)
            .filter(|(_, b)| **b == 0)
            .map(|(p, _)| *p)
            .collect();
        spent.push(also_skip);
        spent.extend(e.from);
        let top_up = Search {
            budget: unplaced,
            top_up: true,
            ..search
        };
        self.forward(id, top_up, &spent, unplaced)
    }

    /// Return `budget` this node could not place to `to`, the neighbour that gave it.
    pub(super) fn give_back(&mut self, id: QueryId, to: Peer, budget: u16) {
        if budget == 0 {
            return;
        }
        self.stats.returns_sent += 1;
        self.push(Transmit {
            to,
            message: Message {
                id,
                body: Body::Return { budget },
            },
        });
    }

    /// Neighbour `from` (a leaf) gave back budget of query `id`: forward it to neighbours
    /// the query has not been to; failing those, top up the ones it went to that gave
    /// none back (branches that may use more: they pass it on as for a query seen
    /// again); failing those, it ends here. A neighbour may give back at most what it was
    /// given less the message that reached it, and then nothing more until topped up.
    pub(super) fn returned(&mut self, now: Instant, from: Peer, id: QueryId, budget: u16) {
        let Some(e) = self.seen.get_mut(&id) else {
            return;
        };
        let Some(i) = e.forwarded_to.iter().position(|p| *p == from) else {
            self.stats.answers_dropped += 1;
            return;
        };
        let budget = budget.min(e.budget_to[i].saturating_sub(1));
        e.budget_to[i] = 0;
        let Some(search) = e.search.clone().filter(|_| budget > 0) else {
            return;
        };
        self.stats.returns_taken += 1;
        // Gathered for a moment, so the other leaves' returns (on their way) are in and
        // the budget goes to the branches that can use it, not back to leaves.
        if e.regather == 0 {
            self.regather.push_back((now + self.config.regather, id));
        }
        e.regather = e.regather.saturating_add(budget);
        let _ = search;
    }

    /// Place the budget leaves gave back for queries whose gathering time is over. Only
    /// leaves give budget back: what cannot be placed here ends here, so budget never
    /// flows back up towards the origin (where it would only cycle).
    pub(super) fn regathered(&mut self, now: Instant) {
        while self.regather.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, id)) = self.regather.pop_front() else {
                break;
            };
            let Some(e) = self.seen.get_mut(&id) else {
                continue;
            };
            let budget = std::mem::take(&mut e.regather);
            let Some(search) = e.search.clone().filter(|_| budget > 0) else {
                continue;
            };
            let own = self.own;
            let _ = self.place(id, Search { budget, ..search }, own);
        }
    }
}
