//! What the discovery state machines that talk to neighbours share: the bounded set of
//! neighbours (nodes one hop away, never the node itself) and a seeded random choice
//! among them, so a simulation replays exactly.

/// A neighbour's (or this node's) identity hash.
pub type Peer = [u8; 16];

/// A xorshift64* generator, seeded by the driver (the state machines read no entropy).
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Random {
        Random(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A node's neighbours, at most a set number.
#[derive(Debug, Clone)]
pub struct Neighbours {
    own: Peer,
    max: usize,
    list: Vec<Peer>,
}

impl Neighbours {
    /// No neighbours yet, for node `own`, keeping at most `max`.
    pub fn new(own: Peer, max: usize) -> Neighbours {
        Neighbours {
            own,
            max,
            list: Vec::new(),
        }
    }

    /// The neighbours, in the order they came.
    pub fn as_slice(&self) -> &[Peer] {
        &self.list
    }

    /// Whether `peer` is one.
    pub fn contains(&self, peer: &Peer) -> bool {
        self.list.contains(peer)
    }

    /// Add `peer`: `Ok(false)` if known already or the node itself, `Err(count)` if
    /// full.
    pub fn add(&mut self, peer: Peer) -> Result<bool, usize> {
        if peer == self.own || self.list.contains(&peer) {
            return Ok(false);
        }
        if self.list.len() >= self.max {
            return Err(self.list.len());
        }
        self.list.push(peer);
        Ok(true)
    }

    /// Remove `peer`; whether it was one.
    pub fn remove(&mut self, peer: &Peer) -> bool {
        let before = self.list.len();
        self.list.retain(|p| p != peer);
        before != self.list.len()
    }

    /// Up to `k` neighbours not in `skip`, a uniform random choice.
    pub fn choose(&self, k: usize, skip: &[Peer], random: &mut Random) -> Vec<Peer> {
        let mut pool: Vec<Peer> = self
            .list
            .iter()
            .copied()
            .filter(|p| !skip.contains(p))
            .collect();
        let k = k.min(pool.len());
        // A partial Fisher-Yates shuffle: the first k are a uniform random choice.
        for i in 0..k {
            let j = i + (random.next_u64() % (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}
