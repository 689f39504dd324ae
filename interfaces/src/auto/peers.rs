//! The AutoInterface peer table, sans-IO: discovery tokens, peers and their timeouts,
//! multicast echoes (carrier detection) and duplicate suppression across NICs.
//!
//! Wire facts (RNS AutoInterface, rns-wire.md §9.3): a discovery datagram starts with
//! `SHA256(group_id ‖ sender's link-local address text)`; peers that are not heard from
//! for 22 s are dropped; a datagram seen within 0.75 s (on another NIC, say) is a duplicate.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Discovery datagrams go to the multicast group this often, on every NIC.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(1600);
/// Peer upkeep (timeouts, reverse peering) runs this often.
pub const PEER_JOB_INTERVAL: Duration = Duration::from_secs(4);
/// A peer not heard from for this long is gone.
pub const PEERING_TIMEOUT: Duration = Duration::from_secs(22);
/// Known peers get a unicast discovery datagram this often (1.6 s × 3.25).
pub const REVERSE_PEERING_INTERVAL: Duration = Duration::from_millis(5200);
/// No echo of our own multicast for this long means the carrier (or multicast) is gone.
pub const MCAST_ECHO_TIMEOUT: Duration = Duration::from_millis(6500);
/// Datagrams remembered for duplicate suppression, and for how long.
const DEDUP_LEN: usize = 48;
const DEDUP_TTL: Duration = Duration::from_millis(750);
/// Peers kept at most: discovery tokens are not secret, so a flood of forged sources
/// must not grow the table without bound.
pub const MAX_PEERS: usize = 256;
/// The discovery token length.
pub const TOKEN_LEN: usize = 32;

/// `SHA256(group_id ‖ address text)`; the text is the RFC 5952 form without a scope.
pub fn discovery_token(group_id: &[u8], addr: &Ipv6Addr) -> [u8; TOKEN_LEN] {
    Sha256::new()
        .chain_update(group_id)
        .chain_update(addr.to_string().as_bytes())
        .finalize()
        .into()
}

/// Multicast address type: temporary (`1`, the default) or permanent (`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    /// `ff1x:`
    Temporary,
    /// `ff0x:`
    Permanent,
}

/// Multicast scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `2` (default): one link.
    Link,
    /// `4`
    Admin,
    /// `5`
    Site,
    /// `8`
    Organisation,
    /// `e`
    Global,
}

/// The discovery group: `ff<type><scope>:0:` then six groups from `SHA256(group_id)[2..14]`.
pub fn multicast_group(group_id: &[u8], kind: AddressType, scope: Scope) -> Ipv6Addr {
    let g: [u8; 32] = Sha256::digest(group_id).into();
    let t: u16 = match kind {
        AddressType::Temporary => 1,
        AddressType::Permanent => 0,
    };
    let s: u16 = match scope {
        Scope::Link => 0x2,
        Scope::Admin => 0x4,
        Scope::Site => 0x5,
        Scope::Organisation => 0x8,
        Scope::Global => 0xe,
    };
    let w = |i: usize| u16::from_be_bytes([g[i], g[i + 1]]);
    Ipv6Addr::new(
        0xff00 | (t << 4) | s,
        0,
        w(2),
        w(4),
        w(6),
        w(8),
        w(10),
        w(12),
    )
}

/// What a discovery datagram meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// A new peer on this NIC.
    NewPeer(Ipv6Addr),
    /// A known peer refreshed.
    Refreshed(Ipv6Addr),
    /// Our own multicast came back: the NIC carries multicast.
    Echo,
    /// Wrong token, truncated, or the table is full: ignored.
    Ignored,
}

/// One peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The NIC (interface index) it was heard on.
    pub nic: u32,
    last_heard: Instant,
    last_reverse: Instant,
}

/// The peer table of one AutoInterface (all its NICs).
#[derive(Debug)]
pub struct Peers {
    group_id: Vec<u8>,
    /// Our link-local address per NIC index.
    own: HashMap<u32, Ipv6Addr>,
    /// Last echo of our own multicast per NIC.
    echoes: HashMap<u32, Instant>,
    peers: HashMap<Ipv6Addr, Peer>,
    recent: VecDeque<([u8; 32], Instant)>,
}

impl Peers {
    /// An empty table for `group_id`.
    pub fn new(group_id: &[u8]) -> Peers {
        Peers {
            group_id: group_id.to_vec(),
            own: HashMap::new(),
            echoes: HashMap::new(),
            peers: HashMap::new(),
            recent: VecDeque::with_capacity(DEDUP_LEN),
        }
    }

    /// Our discovery token for a NIC we adopted.
    pub fn token(&self, nic: u32) -> Option<[u8; TOKEN_LEN]> {
        self.own
            .get(&nic)
            .map(|a| discovery_token(&self.group_id, a))
    }

    /// Adopt a NIC with our link-local address on it (again, if the address changed).
    pub fn adopt(&mut self, nic: u32, addr: Ipv6Addr) {
        self.own.insert(nic, addr);
    }

    /// Forget a NIC (gone or lost its address); returns the peers that were on it.
    pub fn drop_nic(&mut self, nic: u32) -> Vec<Ipv6Addr> {
        self.own.remove(&nic);
        self.echoes.remove(&nic);
        let gone: Vec<Ipv6Addr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.nic == nic)
            .map(|(a, _)| *a)
            .collect();
        for a in &gone {
            self.peers.remove(a);
        }
        gone
    }

    /// A discovery datagram from `src` arrived on `nic`.
    pub fn on_discovery(
        &mut self,
        now: Instant,
        nic: u32,
        src: Ipv6Addr,
        payload: &[u8],
    ) -> Discovery {
        let Some(token) = payload.get(..TOKEN_LEN) else {
            return Discovery::Ignored;
        };
        if token != discovery_token(&self.group_id, &src) {
            return Discovery::Ignored;
        }
        if self.own.values().any(|a| *a == src) {
            self.echoes.insert(nic, now);
            return Discovery::Echo;
        }
        if let Some(p) = self.peers.get_mut(&src) {
            p.last_heard = now;
            return Discovery::Refreshed(src);
        }
        if self.peers.len() >= MAX_PEERS || !self.own.contains_key(&nic) {
            return Discovery::Ignored;
        }
        self.peers.insert(
            src,
            Peer {
                nic,
                last_heard: now,
                last_reverse: now,
            },
        );
        Discovery::NewPeer(src)
    }

    /// A data datagram from `src`: `true` if it comes from a known peer and is not a
    /// duplicate of one seen in the last 0.75 s (which refreshes the peer).
    pub fn accept_data(&mut self, now: Instant, src: &Ipv6Addr, data: &[u8]) -> bool {
        let Some(p) = self.peers.get_mut(src) else {
            return false;
        };
        let h: [u8; 32] = Sha256::digest(data).into();
        if self
            .recent
            .iter()
            .any(|(r, t)| *r == h && now.saturating_duration_since(*t) < DEDUP_TTL)
        {
            return false;
        }
        p.last_heard = now;
        if self.recent.len() >= DEDUP_LEN {
            self.recent.pop_front();
        }
        self.recent.push_back((h, now));
        true
    }

    /// A peer's entry.
    pub fn peer(&self, addr: &Ipv6Addr) -> Option<&Peer> {
        self.peers.get(addr)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Drop peers not heard from for [`PEERING_TIMEOUT`]; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Ipv6Addr> {
        let gone: Vec<Ipv6Addr> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_heard) > PEERING_TIMEOUT)
            .map(|(a, _)| *a)
            .collect();
        for a in &gone {
            self.peers.remove(a);
        }
        gone
    }

    /// Peers due a unicast discovery datagram (marked as sent): `(peer, nic)`.
    pub fn due_reverse(&mut self, now: Instant) -> Vec<(Ipv6Addr, u32)> {
        let mut out = Vec::new();
        for (a, p) in self.peers.iter_mut() {
            if now.saturating_duration_since(p.last_reverse) > REVERSE_PEERING_INTERVAL {
                p.last_reverse = now;
                out.push((*a, p.nic));
            }
        }
        out
    }

    /// Whether our multicast has echoed back on `nic` within [`MCAST_ECHO_TIMEOUT`].
    pub fn carrier(&self, now: Instant, nic: u32) -> bool {
        self.echoes
            .get(&nic)
            .is_some_and(|t| now.saturating_duration_since(*t) <= MCAST_ECHO_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn default_group_matches_rns() {
        let g = multicast_group(b"reticulum", AddressType::Temporary, Scope::Link);
        assert_eq!(g, a("ff12:0:d70b:fb1c:16e4:5e39:485e:31e1"));
        let p = multicast_group(b"reticulum", AddressType::Permanent, Scope::Site);
        assert_eq!(p.segments()[0], 0xff05);
    }

    #[test]
    fn tokens_use_the_plain_address_text() {
        let addr = a("fe80::1c2d:3eff:fe4f:5a6b");
        let mut h = Sha256::new();
        h.update(b"reticulum");
        h.update(b"fe80::1c2d:3eff:fe4f:5a6b");
        assert_eq!(
            discovery_token(b"reticulum", &addr),
            <[u8; 32]>::from(h.finalize())
        );
    }

    #[test]
    fn peers_come_refresh_echo_and_time_out() {
        let t0 = Instant::now();
        let mut p = Peers::new(b"reticulum");
        let me = a("fe80::1");
        let them = a("fe80::2");
        p.adopt(3, me);
        let tok = discovery_token(b"reticulum", &them);
        assert_eq!(p.on_discovery(t0, 3, them, &tok), Discovery::NewPeer(them));
        assert_eq!(
            p.on_discovery(t0, 3, them, &tok),
            Discovery::Refreshed(them)
        );
        // Our own multicast comes back.
        let mine = p.token(3).unwrap();
        assert!(!p.carrier(t0, 3));
        assert_eq!(p.on_discovery(t0, 3, me, &mine), Discovery::Echo);
        assert!(p.carrier(t0, 3));
        assert!(!p.carrier(t0 + MCAST_ECHO_TIMEOUT + Duration::from_millis(1), 3));
        // Reverse peering after 5.2 s.
        assert!(p.due_reverse(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(p.due_reverse(t0 + Duration::from_secs(6)), vec![(them, 3)]);
        // Data keeps a peer alive; silence drops it.
        let t1 = t0 + Duration::from_secs(20);
        assert!(p.accept_data(t1, &them, b"x"));
        assert!(p.expire(t1 + Duration::from_secs(21)).is_empty());
        assert_eq!(p.expire(t1 + Duration::from_secs(23)), vec![them]);
        assert!(p.is_empty());
    }

    #[test]
    fn bad_tokens_strangers_and_duplicates_are_dropped() {
        let t0 = Instant::now();
        let mut p = Peers::new(b"reticulum");
        p.adopt(1, a("fe80::1"));
        let them = a("fe80::2");
        // Wrong group, wrong address, truncated: nothing is created.
        let wrong = discovery_token(b"other", &them);
        assert_eq!(p.on_discovery(t0, 1, them, &wrong), Discovery::Ignored);
        let other = discovery_token(b"reticulum", &a("fe80::3"));
        assert_eq!(p.on_discovery(t0, 1, them, &other), Discovery::Ignored);
        let good = discovery_token(b"reticulum", &them);
        assert_eq!(p.on_discovery(t0, 1, them, &good[..31]), Discovery::Ignored);
        // A NIC we did not adopt does not create peers.
        assert_eq!(p.on_discovery(t0, 9, them, &good), Discovery::Ignored);
        assert!(p.is_empty());
        // Data from a stranger is dropped; a duplicate within 0.75 s too.
        assert!(!p.accept_data(t0, &them, b"x"));
        assert_eq!(p.on_discovery(t0, 1, them, &good), Discovery::NewPeer(them));
        assert!(p.accept_data(t0, &them, b"x"));
        assert!(!p.accept_data(t0 + Duration::from_millis(500), &them, b"x"));
        assert!(p.accept_data(t0 + Duration::from_millis(800), &them, b"x"));
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut p = Peers::new(b"g");
        p.adopt(1, a("fe80::1"));
        for i in 0..(MAX_PEERS as u16 + 50) {
            let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, i);
            let tok = discovery_token(b"g", &src);
            p.on_discovery(t0, 1, src, &tok);
        }
        assert_eq!(p.len(), MAX_PEERS);
        assert_eq!(p.drop_nic(1).len(), MAX_PEERS);
    }
}
