//! Receipts: packets we sent and expect a proof for.

use std::collections::VecDeque;

use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::time::Instant;

/// Most receipts tracked at once (oldest are given up first).
pub(crate) const MAX_RECEIPTS: usize = 1024;

/// An outstanding receipt.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    pub(crate) packet_hash: [u8; FULL_HASH_LEN],
    pub(crate) destination: AddressHash,
    pub(crate) sent_at: Instant,
    pub(crate) deadline: Instant,
}

/// Outstanding receipts in send order.
#[derive(Debug, Default)]
pub(crate) struct Receipts {
    list: VecDeque<Receipt>,
}

impl Receipts {
    /// Add a receipt; returns one that had to be given up to stay bounded.
    pub(crate) fn push(&mut self, r: Receipt) -> Option<Receipt> {
        let culled = (self.list.len() >= MAX_RECEIPTS)
            .then(|| self.list.pop_front())
            .flatten();
        self.list.push_back(r);
        culled
    }

    /// Remove and return the receipt for `hash`.
    pub(crate) fn take(&mut self, hash: &[u8; FULL_HASH_LEN]) -> Option<Receipt> {
        let i = self.list.iter().position(|r| &r.packet_hash == hash)?;
        self.list.remove(i)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Receipt> {
        self.list.iter()
    }

    /// Remove and return every receipt past its deadline.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Receipt> {
        let (gone, keep): (Vec<_>, Vec<_>) = self.list.drain(..).partition(|r| now >= r.deadline);
        self.list = keep.into();
        gone
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(i: u8, deadline: u64) -> Receipt {
        Receipt {
            packet_hash: [i; 32],
            destination: AddressHash([i; 16]),
            sent_at: Instant::ZERO,
            deadline: Instant::from_secs(deadline),
        }
    }

    #[test]
    fn bounded_take_and_expire() {
        let mut rs = Receipts::default();
        for i in 0..MAX_RECEIPTS {
            assert!(rs.push(r((i % 250) as u8, 10)).is_none());
        }
        assert!(rs.push(r(251, 20)).is_some());
        assert_eq!(rs.len(), MAX_RECEIPTS);
        assert!(rs.take(&[251; 32]).is_some());
        assert!(rs.take(&[251; 32]).is_none());
        assert_eq!(rs.expire(Instant::from_secs(10)).len(), MAX_RECEIPTS - 1);
        assert_eq!(rs.len(), 0);
    }
}
