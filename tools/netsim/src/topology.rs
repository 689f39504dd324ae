//! Who can hear whom: a neighbour graph built from the scenario's `[network]` table and
//! the seed, the same graph for the same seed. Workloads that only talk to neighbours
//! (the flood search, gossip) send along its edges; workloads that ride on Reticulum
//! paths (the DHT) message any node and ignore it.
//!
//! | `topology` | graph | settings |
//! |---|---|---|
//! | `full` (default) | everyone hears everyone (an overlay) | — |
//! | `line` | node i hears i − 1 and i + 1 | — |
//! | `grid` | a 2-D grid, ⌈√n⌉ columns, the last row short | — |
//! | `random-regular` | every node has `degree` neighbours, uniformly at random | `degree` (2 to 64, `degree × nodes` even) |
//! | `random-geometric` | nodes at random points of the unit square, neighbours within `radius` | `radius` (0 to 1.5) |
//! | `lan-clusters` | clusters of `cluster_size` nodes, each fully connected; the first node of each is its gateway, and the gateways form a ring with one random chord each | `cluster_size` (2 to 256) |
//!
//! The random graphs are connected: a random-regular or random-geometric graph that comes
//! out disconnected is drawn again (up to [`REDRAWS`] times), and if it still is, each
//! smaller component is joined to the largest by one edge (for random-geometric, between
//! the closest pair of points; for random-regular, between random nodes, so a few nodes
//! then have `degree + 1`). The figures say how many draws and joining edges it took.

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use serde::Serialize;

use crate::scenario::Network;

/// Draws of a random graph before disconnected parts are joined by extra edges.
pub const REDRAWS: usize = 10;

/// The kinds of graph, with their settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Topology {
    /// Everyone hears everyone.
    Full,
    /// A line.
    Line,
    /// A 2-D grid, near square.
    Grid,
    /// Every node has `degree` random neighbours.
    RandomRegular {
        /// Neighbours per node.
        degree: usize,
    },
    /// Random points in the unit square, neighbours within `radius`.
    RandomGeometric {
        /// The radio range, in units of the square's side.
        radius: f64,
    },
    /// Fully connected clusters joined by a backbone of gateways.
    LanClusters {
        /// Nodes per cluster (the last one may be smaller).
        cluster_size: usize,
    },
}

/// Why the `[network]` table does not describe a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// An unknown `topology` value.
    #[error("network.topology = {0:?}: unknown; one of full, line, grid, random-regular, random-geometric, lan-clusters")]
    Unknown(String),
    /// A setting the topology needs is absent.
    #[error("{key} is needed for topology {topology:?}")]
    Missing {
        /// The key.
        key: &'static str,
        /// The topology.
        topology: &'static str,
    },
    /// A setting the topology does not use is present.
    #[error("{key} does not apply to topology {topology:?}")]
    Unused {
        /// The key.
        key: &'static str,
        /// The topology.
        topology: &'static str,
    },
    /// A setting out of range.
    #[error("{key} = {value}: {reason}")]
    Value {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
}

impl Topology {
    /// The topology `network` selects, checked against its number of nodes.
    pub fn from_network(network: &Network) -> Result<Topology, TopologyError> {
        let name = network.topology.as_str();
        let n = network.nodes;
        let topology: &'static str = match name {
            "full" => "full",
            "line" => "line",
            "grid" => "grid",
            "random-regular" => "random-regular",
            "random-geometric" => "random-geometric",
            "lan-clusters" => "lan-clusters",
            other => return Err(TopologyError::Unknown(other.to_owned())),
        };
        let settings: [(&'static str, bool, &'static str); 3] = [
            ("network.degree", network.degree.is_some(), "random-regular"),
            (
                "network.radius",
                network.radius.is_some(),
                "random-geometric",
            ),
            (
                "network.cluster_size",
                network.cluster_size.is_some(),
                "lan-clusters",
            ),
        ];
        for (key, present, owner) in settings {
            if present && owner != topology {
                return Err(TopologyError::Unused { key, topology });
            }
            if !present && owner == topology {
                return Err(TopologyError::Missing { key, topology });
            }
        }
        let bad = |key, value: String, reason| Err(TopologyError::Value { key, value, reason });
        Ok(match topology {
            "full" => Topology::Full,
            "line" => Topology::Line,
            "grid" => Topology::Grid,
            "random-regular" => {
                let degree = network.degree.unwrap_or(0);
                if !(2..=64).contains(&degree) || degree >= n {
                    return bad(
                        "network.degree",
                        degree.to_string(),
                        "from 2 to 64, below the number of nodes",
                    );
                }
                if degree * n % 2 == 1 {
                    return bad(
                        "network.degree",
                        degree.to_string(),
                        "degree × nodes must be even",
                    );
                }
                Topology::RandomRegular { degree }
            }
            "random-geometric" => {
                let radius = network.radius.unwrap_or(0.0);
                if !(radius > 0.0 && radius <= 1.5) {
                    return bad("network.radius", radius.to_string(), "above 0, at most 1.5");
                }
                Topology::RandomGeometric { radius }
            }
            _ => {
                let cluster_size = network.cluster_size.unwrap_or(0);
                if !(2..=256).contains(&cluster_size) {
                    return bad(
                        "network.cluster_size",
                        cluster_size.to_string(),
                        "from 2 to 256",
                    );
                }
                Topology::LanClusters { cluster_size }
            }
        })
    }

    /// Its name, as in the scenario.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Full => "full",
            Topology::Line => "line",
            Topology::Grid => "grid",
            Topology::RandomRegular { .. } => "random-regular",
            Topology::RandomGeometric { .. } => "random-geometric",
            Topology::LanClusters { .. } => "lan-clusters",
        }
    }

    /// The graph of `network` (its topology, or `fallback` if it names none that is
    /// valid: scenarios are checked when loaded) drawn for `seed`, and its shape. The
    /// same network and seed give the same graph, whatever the workload.
    pub fn for_run(network: &Network, seed: u64, fallback: Topology) -> (Graph, GraphStats) {
        let mut rng = <ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(
            seed ^ 0x6772_6170_6800,
        );
        let topology = Topology::from_network(network).unwrap_or(fallback);
        let graph = topology.build(network.nodes, &mut rng);
        let stats = graph.stats(&mut rng);
        (graph, stats)
    }

    /// The graph on `nodes` nodes, its randomness from `rng`.
    pub fn build(&self, nodes: usize, rng: &mut ChaCha8Rng) -> Graph {
        let n = nodes;
        let mut g = Graph {
            topology: *self,
            n,
            adj: None,
            draws: 1,
            joined: 0,
        };
        let mut adj = vec![Vec::new(); n];
        match *self {
            Topology::Full => return g,
            Topology::Line => {
                for i in 1..n {
                    link(&mut adj, i - 1, i);
                }
            }
            Topology::Grid => {
                let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
                for i in 0..n {
                    if i % cols + 1 < cols && i + 1 < n {
                        link(&mut adj, i, i + 1);
                    }
                    if i + cols < n {
                        link(&mut adj, i, i + cols);
                    }
                }
            }
            Topology::RandomRegular { degree } => {
                adj = random_regular(n, degree, rng);
                while components(&adj).len() > 1 && g.draws < REDRAWS {
                    adj = random_regular(n, degree, rng);
                    g.draws += 1;
                }
                g.joined = join_components(
                    &mut adj,
                    |comp, giant, rng| (pick(comp, rng), pick(giant, rng)),
                    rng,
                );
            }
            Topology::RandomGeometric { radius } => {
                let mut points = random_points(n, rng);
                adj = geometric(&points, radius);
                while components(&adj).len() > 1 && g.draws < REDRAWS {
                    points = random_points(n, rng);
                    adj = geometric(&points, radius);
                    g.draws += 1;
                }
                g.joined = join_components(
                    &mut adj,
                    |comp, giant, _| closest_pair(&points, comp, giant),
                    rng,
                );
            }
            Topology::LanClusters { cluster_size } => {
                let gateways: Vec<usize> = (0..n).step_by(cluster_size).collect();
                for &start in &gateways {
                    let end = (start + cluster_size).min(n);
                    for a in start..end {
                        for b in a + 1..end {
                            link(&mut adj, a, b);
                        }
                    }
                }
                let c = gateways.len();
                if c > 1 {
                    for i in 0..c {
                        let j = (i + 1) % c;
                        if c > 2 || i == 0 {
                            link(&mut adj, gateways[i], gateways[j]);
                        }
                    }
                }
                if c > 3 {
                    for i in 0..c {
                        let j = (rng.next_u64() % c as u64) as usize;
                        if j != i && !adj[gateways[i]].contains(&(gateways[j] as u32)) {
                            link(&mut adj, gateways[i], gateways[j]);
                        }
                    }
                }
            }
        }
        for a in &mut adj {
            a.sort_unstable();
        }
        g.adj = Some(adj);
        g
    }
}

fn link(adj: &mut [Vec<u32>], a: usize, b: usize) {
    adj[a].push(b as u32);
    adj[b].push(a as u32);
}

fn pick(nodes: &[usize], rng: &mut ChaCha8Rng) -> usize {
    nodes[(rng.next_u64() % nodes.len() as u64) as usize]
}

/// A uniform random simple `degree`-regular graph, near enough: stubs paired at random,
/// refusing self-loops and repeated edges, starting again when stuck (Steger and
/// Wormald's method).
fn random_regular(n: usize, degree: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<u32>> {
    'attempt: loop {
        let mut adj: Vec<Vec<u32>> = vec![Vec::with_capacity(degree); n];
        let mut stubs: Vec<usize> = (0..n)
            .flat_map(|v| std::iter::repeat_n(v, degree))
            .collect();
        let mut misses = 0usize;
        while stubs.len() >= 2 {
            let i = (rng.next_u64() % stubs.len() as u64) as usize;
            let j = (rng.next_u64() % stubs.len() as u64) as usize;
            let (a, b) = (stubs[i], stubs[j]);
            if i == j || a == b || adj[a].contains(&(b as u32)) {
                misses += 1;
                if misses > 1000 {
                    misses = 0;
                    let open = |x: usize, y: usize| {
                        let (a, b) = (stubs[x], stubs[y]);
                        a != b && !adj[a].contains(&(b as u32))
                    };
                    let any = (0..stubs.len()).any(|x| (x + 1..stubs.len()).any(|y| open(x, y)));
                    if !any {
                        continue 'attempt; // stuck: only bad pairs are left
                    }
                }
                continue;
            }
            link(&mut adj, a, b);
            let (hi, lo) = (i.max(j), i.min(j));
            stubs.swap_remove(hi);
            stubs.swap_remove(lo);
        }
        return adj;
    }
}

fn random_points(n: usize, rng: &mut ChaCha8Rng) -> Vec<(f64, f64)> {
    let unit = |rng: &mut ChaCha8Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (0..n).map(|_| (unit(rng), unit(rng))).collect()
}

fn dist2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
}

/// Neighbours within `radius`, found through a grid of cells `radius` wide.
fn geometric(points: &[(f64, f64)], radius: f64) -> Vec<Vec<u32>> {
    let n = points.len();
    let cells = ((1.0 / radius).floor() as usize).clamp(1, 1024);
    let cell = |p: (f64, f64)| {
        let c = |x: f64| ((x * cells as f64) as usize).min(cells - 1);
        (c(p.0), c(p.1))
    };
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); cells * cells];
    for (i, p) in points.iter().enumerate() {
        let (x, y) = cell(*p);
        grid[y * cells + x].push(i);
    }
    let mut adj = vec![Vec::new(); n];
    let r2 = radius * radius;
    for (i, p) in points.iter().enumerate() {
        let (x, y) = cell(*p);
        for dy in [-1i64, 0, 1] {
            for dx in [-1i64, 0, 1] {
                let (cx, cy) = (x as i64 + dx, y as i64 + dy);
                if cx < 0 || cy < 0 || cx >= cells as i64 || cy >= cells as i64 {
                    continue;
                }
                for &j in &grid[cy as usize * cells + cx as usize] {
                    if j > i && dist2(*p, points[j]) <= r2 {
                        link(&mut adj, i, j);
                    }
                }
            }
        }
    }
    adj
}

fn closest_pair(points: &[(f64, f64)], a: &[usize], b: &[usize]) -> (usize, usize) {
    let mut best = (a[0], b[0], f64::INFINITY);
    for &u in a {
        for &v in b {
            let d = dist2(points[u], points[v]);
            if d < best.2 {
                best = (u, v, d);
            }
        }
    }
    (best.0, best.1)
}

/// The connected components, largest first (ties by lowest node).
fn components(adj: &[Vec<u32>]) -> Vec<Vec<usize>> {
    let mut seen = vec![false; adj.len()];
    let mut out = Vec::new();
    for s in 0..adj.len() {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        let mut comp = vec![s];
        let mut i = 0;
        while i < comp.len() {
            for &w in &adj[comp[i]] {
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    comp.push(w as usize);
                }
            }
            i += 1;
        }
        out.push(comp);
    }
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    out
}

/// Join every smaller component to the largest by one edge chosen by `choose`; the
/// number of edges added.
fn join_components(
    adj: &mut [Vec<u32>],
    choose: impl Fn(&[usize], &[usize], &mut ChaCha8Rng) -> (usize, usize),
    rng: &mut ChaCha8Rng,
) -> usize {
    let mut comps = components(adj).into_iter();
    let Some(mut giant) = comps.next() else {
        return 0;
    };
    let mut joined = 0;
    for comp in comps {
        let (a, b) = choose(&comp, &giant, rng);
        link(adj, a, b);
        giant.extend(comp);
        joined += 1;
    }
    joined
}

/// A neighbour graph.
#[derive(Debug, Clone)]
pub struct Graph {
    topology: Topology,
    n: usize,
    /// Sorted neighbour lists; `None` for the full graph (kept implicit).
    adj: Option<Vec<Vec<u32>>>,
    draws: usize,
    joined: usize,
}

/// A graph's shape, for the figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphStats {
    /// The topology's name.
    pub topology: &'static str,
    /// Nodes.
    pub nodes: usize,
    /// Edges.
    pub edges: u64,
    /// Neighbours per node: mean, least, most.
    pub mean_degree: f64,
    /// The fewest neighbours a node has.
    pub min_degree: usize,
    /// The most neighbours a node has.
    pub max_degree: usize,
    /// The longest shortest path found by a few double-sweep breadth-first searches: a
    /// lower bound on the diameter, usually exact on these graphs.
    pub diameter_estimate: usize,
    /// Random graphs drawn before one was connected (1 for the others).
    pub draws: usize,
    /// Edges added to join components that stayed apart.
    pub joining_edges: usize,
}

impl Graph {
    /// Its topology.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Nodes.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether it has no nodes.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether everyone hears everyone.
    pub fn is_full(&self) -> bool {
        self.adj.is_none()
    }

    /// `node`'s neighbours as a slice (sorted); `None` for the full graph, whose lists
    /// are not kept (use [`Graph::neighbours`]).
    pub fn adjacency(&self, node: u32) -> Option<&[u32]> {
        self.adj
            .as_ref()
            .map(|a| a.get(node as usize).map_or(&[][..], |v| &v[..]))
    }

    /// `node`'s neighbours, in order.
    pub fn neighbours(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        let (full, list) = match self.adjacency(node) {
            Some(list) => (0..0, list),
            None if (node as usize) < self.n => (0..self.n as u32, &[][..]),
            None => (0..0, &[][..]),
        };
        full.filter(move |v| *v != node).chain(list.iter().copied())
    }

    /// How many neighbours `node` has.
    pub fn degree(&self, node: u32) -> usize {
        match self.adjacency(node) {
            Some(list) => list.len(),
            None => usize::from((node as usize) < self.n) * self.n.saturating_sub(1),
        }
    }

    /// Whether `a` and `b` are neighbours.
    pub fn are_neighbours(&self, a: u32, b: u32) -> bool {
        match self.adjacency(a) {
            Some(list) => list.binary_search(&b).is_ok(),
            None => a != b && (a as usize) < self.n && (b as usize) < self.n,
        }
    }

    /// The two ends of a longest shortest path found by a double sweep from `start`:
    /// the node farthest from `start`, then the node farthest from that one; and the
    /// hops between them.
    pub fn far_pair(&self, start: u32) -> (u32, u32, usize) {
        match &self.adj {
            Some(adj) if (start as usize) < self.n => {
                let (a, _) = bfs_farthest(adj, start as usize);
                let (b, hops) = bfs_farthest(adj, a);
                (a as u32, b as u32, hops)
            }
            _ => (start, (start + 1) % self.n.max(1) as u32, 1),
        }
    }

    /// Its shape, the diameter estimated from breadth-first searches that start at
    /// nodes `rng` picks.
    pub fn stats(&self, rng: &mut ChaCha8Rng) -> GraphStats {
        let n = self.n;
        let degrees: Vec<usize> = (0..n as u32).map(|v| self.degree(v)).collect();
        let sum: u64 = degrees.iter().map(|d| *d as u64).sum();
        let diameter = match &self.adj {
            None => usize::from(n > 1),
            Some(adj) if n > 0 => {
                let mut best = 0;
                for _ in 0..4 {
                    let start = (rng.next_u64() % n as u64) as usize;
                    let (far, _) = bfs_farthest(adj, start);
                    let (_, ecc) = bfs_farthest(adj, far);
                    best = best.max(ecc);
                }
                best
            }
            Some(_) => 0,
        };
        GraphStats {
            topology: self.topology.name(),
            nodes: n,
            edges: sum / 2,
            mean_degree: (sum as f64 / n.max(1) as f64 * 100.0).round() / 100.0,
            min_degree: degrees.iter().min().copied().unwrap_or(0),
            max_degree: degrees.iter().max().copied().unwrap_or(0),
            diameter_estimate: diameter,
            draws: self.draws,
            joining_edges: self.joined,
        }
    }
}

/// The node farthest from `start` and its distance.
/// Hops from `start` to every node (`usize::MAX` for none), and the nodes in the order
/// the search reached them.
fn bfs(adj: &[Vec<u32>], start: usize) -> (Vec<usize>, Vec<usize>) {
    let mut dist = vec![usize::MAX; adj.len()];
    let mut order = Vec::with_capacity(adj.len());
    dist[start] = 0;
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        order.push(v);
        for &w in &adj[v] {
            if dist[w as usize] == usize::MAX {
                dist[w as usize] = dist[v] + 1;
                queue.push_back(w as usize);
            }
        }
    }
    (dist, order)
}

/// The first node the search from `start` reaches at the greatest distance, and that
/// distance.
fn bfs_farthest(adj: &[Vec<u32>], start: usize) -> (usize, usize) {
    let (dist, order) = bfs(adj, start);
    let mut far = (start, 0);
    for v in order {
        if dist[v] > far.1 {
            far = (v, dist[v]);
        }
    }
    far
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn network(nodes: usize, topology: &str) -> Network {
        Network {
            nodes,
            latency_ms: 50,
            jitter_ms: 0,
            loss: 0.0,
            topology: topology.into(),
            degree: None,
            radius: None,
            cluster_size: None,
            bitrate_bps: None,
            mtu: None,
            partitions: Vec::new(),
        }
    }

    fn build(net: &Network, seed: u64) -> Graph {
        let t = Topology::from_network(net).unwrap();
        t.build(net.nodes, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    fn connected(g: &Graph) -> bool {
        g.adj.as_ref().is_none_or(|a| components(a).len() == 1)
    }

    fn symmetric(g: &Graph) -> bool {
        (0..g.len() as u32).all(|a| g.neighbours(a).all(|b| b != a && g.are_neighbours(b, a)))
    }

    #[test]
    fn the_far_pair_spans_a_line() {
        let g = Topology::Line.build(5, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(g.far_pair(2), (0, 4, 4));
        let full = Topology::Full.build(3, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(full.far_pair(2), (2, 0, 1));
    }

    #[test]
    fn fixed_graphs_have_their_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = build(&network(10, "line"), 1);
        assert_eq!(g.stats(&mut rng).diameter_estimate, 9);
        assert_eq!(g.neighbours(0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(g.neighbours(5).collect::<Vec<_>>(), vec![4, 6]);
        let g = build(&network(10, "grid"), 1); // 4 columns, rows of 4, 4, 2
        let s = g.stats(&mut rng);
        assert_eq!((s.edges, s.max_degree, s.diameter_estimate), (13, 4, 5));
        assert!(connected(&g) && symmetric(&g));
        let g = build(&network(5, "full"), 1);
        assert!(g.is_full() && g.are_neighbours(0, 4) && !g.are_neighbours(2, 2));
        assert_eq!(g.neighbours(2).collect::<Vec<_>>(), vec![0, 1, 3, 4]);
        let s = g.stats(&mut rng);
        assert_eq!((s.edges, s.diameter_estimate, s.mean_degree), (10, 1, 4.0));
        let mut lan = network(50, "lan-clusters");
        lan.cluster_size = Some(10);
        let g = build(&lan, 1);
        assert!(connected(&g) && symmetric(&g));
        assert!(g.are_neighbours(11, 19) && !g.are_neighbours(11, 21));
        assert!(g.are_neighbours(0, 10), "gateways on a ring");
    }

    #[test]
    fn random_graphs_are_regular_or_geometric_connected_and_reproducible() {
        let mut rr = network(1000, "random-regular");
        rr.degree = Some(6);
        let g = build(&rr, 3);
        assert!(connected(&g) && symmetric(&g));
        assert!((0..1000).all(|v| g.degree(v) == 6));
        let again = build(&rr, 3);
        assert_eq!(g.adj, again.adj, "same seed, same graph");
        assert_ne!(g.adj, build(&rr, 4).adj);
        let s = g.stats(&mut ChaCha8Rng::seed_from_u64(1));
        assert!((5..=8).contains(&s.diameter_estimate), "{s:?}");

        // A radius below the connectivity threshold: drawn REDRAWS times, then joined.
        let mut rg = network(300, "random-geometric");
        rg.radius = Some(0.05);
        let g = build(&rg, 1);
        assert!(connected(&g) && symmetric(&g));
        let s = g.stats(&mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(s.draws, REDRAWS);
        assert!(s.joining_edges > 0);
        rg.radius = Some(0.2);
        let s = build(&rg, 1).stats(&mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!((s.draws, s.joining_edges), (1, 0));
        assert!(s.mean_degree > 20.0 && s.mean_degree < 40.0, "{s:?}");
    }

    #[test]
    fn unknown_or_misplaced_settings_are_refused_naming_the_key() {
        let e = Topology::from_network(&network(10, "ring")).unwrap_err();
        assert_eq!(e, TopologyError::Unknown("ring".into()));
        assert!(e.to_string().starts_with("network.topology"));
        let e = Topology::from_network(&network(10, "random-regular")).unwrap_err();
        assert!(e.to_string().contains("network.degree"), "{e}");
        let mut n = network(10, "line");
        n.radius = Some(0.1);
        let e = Topology::from_network(&n).unwrap_err();
        assert!(e.to_string().contains("network.radius"), "{e}");
        let mut n = network(9, "random-regular");
        n.degree = Some(3);
        let e = Topology::from_network(&n).unwrap_err();
        assert!(e.to_string().contains("even"), "{e}");
    }
}
