//! The bounded queue of packets from the host waiting for the channel.
//!
//! Fixed capacity, no allocation: when it is full a new packet is refused (the modem
//! then reports `ERROR_QUEUE_FULL`) instead of the queue growing.

use crate::split::MTU;
use core::fmt;

/// One queued packet.
pub type Packet = heapless::Vec<u8, MTU>;

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// Every slot is taken.
    Full,
    /// An empty packet.
    Empty,
    /// Longer than [`MTU`]; carries the length.
    TooLong(usize),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Full => f.write_str("the transmit queue is full"),
            QueueError::Empty => f.write_str("an empty packet cannot be queued"),
            QueueError::TooLong(n) => write!(f, "a {n}-byte packet exceeds the {MTU}-byte MTU"),
        }
    }
}

/// A FIFO of at most `N` packets.
#[derive(Debug, Clone, Default)]
pub struct TxQueue<const N: usize> {
    packets: heapless::Deque<Packet, N>,
}

impl<const N: usize> TxQueue<N> {
    /// An empty queue.
    pub const fn new() -> Self {
        TxQueue {
            packets: heapless::Deque::new(),
        }
    }

    /// Append a copy of `packet`.
    pub fn push(&mut self, packet: &[u8]) -> Result<(), QueueError> {
        if packet.is_empty() {
            return Err(QueueError::Empty);
        }
        if packet.len() > MTU {
            return Err(QueueError::TooLong(packet.len()));
        }
        if self.packets.is_full() {
            return Err(QueueError::Full);
        }
        let p = Packet::from_slice(packet).map_err(|_| QueueError::TooLong(packet.len()))?;
        self.packets.push_back(p).map_err(|_| QueueError::Full)
    }

    /// Take the oldest packet.
    pub fn pop(&mut self) -> Option<Packet> {
        self.packets.pop_front()
    }

    /// The oldest packet, left in place.
    pub fn front(&self) -> Option<&Packet> {
        self.packets.front()
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Whether another packet would be refused.
    pub fn is_full(&self) -> bool {
        self.packets.is_full()
    }

    /// The most packets the queue holds.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.packets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_bounds() {
        let mut q = TxQueue::<2>::new();
        assert_eq!(q.push(&[]), Err(QueueError::Empty));
        assert_eq!(q.push(&[0u8; MTU + 1]), Err(QueueError::TooLong(MTU + 1)));
        q.push(&[1]).unwrap();
        q.push(&[2; MTU]).unwrap();
        assert!(q.is_full());
        assert_eq!(q.push(&[3]), Err(QueueError::Full));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().unwrap().as_slice(), &[1]);
        assert_eq!(q.front().unwrap().len(), MTU);
        q.push(&[3]).unwrap();
        assert_eq!(q.pop().unwrap().len(), MTU);
        assert_eq!(q.pop().unwrap().as_slice(), &[3]);
        assert!(q.pop().is_none());
        assert!(q.is_empty());
    }
}
