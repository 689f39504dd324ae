//! Resources: transfers larger than one packet over a link, RNS-compatible.
//!
//! A resource (one segment of at most 1 MiB − 1) is compressed with bz2 if that helps,
//! prefixed with 4 random bytes, encrypted once with the link key, and cut into parts of
//! `link MTU − 36` bytes. The receiver requests parts by 4-byte map hashes in a window that
//! grows and shrinks like RNS's, assembles, checks the hash, and proves. Larger inputs are
//! sent as several resources sharing an original hash; that orchestration (and reading and
//! writing files) belongs to the caller, so memory stays bounded by one segment.

mod advertisement;
mod receiver;
mod sender;

use std::io::{Read, Write};

pub use advertisement::{Advertisement, AdvertisementError, SegmentInfo};
pub use receiver::{segment_data_limit, Assembled, IncomingResource, ReceiverStep};
pub use sender::{OutgoingResource, SegmentBuffer, SegmentSpec, SenderError, SenderStep};

/// Length of a part's map hash.
pub const MAPHASH_LEN: usize = 4;
/// Length of the resource random hash (and of the random prefix).
pub const RANDOM_HASH_LEN: usize = 4;
/// Largest segment of data (with metadata) sent as one resource.
pub const MAX_EFFICIENT_SIZE: usize = 1024 * 1024 - 1;
/// Map hashes per advertisement or hashmap update: floor((431 − 134) / 4).
pub const HASHMAP_MAX_LEN: usize = 74;
/// Window within which map hashes must be unique: 2 × 75 + 74.
pub const COLLISION_GUARD: usize = 2 * WINDOW_MAX_FAST + HASHMAP_MAX_LEN;
/// Largest metadata.
pub const METADATA_MAX_SIZE: usize = 16 * 1024 * 1024 - 1;
/// Inputs up to this size are offered to bz2.
pub const AUTO_COMPRESS_MAX_SIZE: usize = 64 * 1024 * 1024;

pub(crate) const WINDOW: usize = 4;
pub(crate) const WINDOW_MIN: usize = 2;
pub(crate) const WINDOW_MAX_SLOW: usize = 10;
pub(crate) const WINDOW_MAX_VERY_SLOW: usize = 4;
pub(crate) const WINDOW_MAX_FAST: usize = 75;
pub(crate) const WINDOW_FLEXIBILITY: usize = 4;
pub(crate) const FAST_RATE_THRESHOLD: u32 = (WINDOW_MAX_SLOW - WINDOW - 2) as u32;
pub(crate) const VERY_SLOW_RATE_THRESHOLD: u32 = 2;
/// Bytes per second above which a round counts as fast.
pub(crate) const RATE_FAST: f64 = 50_000.0 / 8.0;
/// Bytes per second below which a round counts as very slow.
pub(crate) const RATE_VERY_SLOW: f64 = 2_000.0 / 8.0;
pub(crate) const MAX_RETRIES: u32 = 16;
pub(crate) const MAX_ADV_RETRIES: u32 = 4;

/// Advertisement flag bits.
pub mod flags {
    /// Encrypted with the link key.
    pub const ENCRYPTED: u8 = 0x01;
    /// bz2-compressed.
    pub const COMPRESSED: u8 = 0x02;
    /// Part of a multi-segment resource.
    pub const SPLIT: u8 = 0x04;
    /// A request sent as a resource.
    pub const IS_REQUEST: u8 = 0x08;
    /// A response sent as a resource.
    pub const IS_RESPONSE: u8 = 0x10;
    /// The first segment starts with metadata.
    pub const HAS_METADATA: u8 = 0x20;
}

/// The part size for a link MTU: `mtu − 35 − 1`.
pub const fn sdu(mtu: usize) -> usize {
    mtu - crate::packet::HEADER_MAXSIZE - crate::packet::IFAC_MIN_SIZE
}

/// A 4-byte map hash of a part.
pub(crate) fn map_hash(part: &[u8], random_hash: &[u8; RANDOM_HASH_LEN]) -> [u8; MAPHASH_LEN] {
    let h = crate::hash::full_hash_parts(&[part, random_hash]);
    h[..MAPHASH_LEN].try_into().expect("4 bytes")
}

/// A resource's hash `SHA256(data ‖ random_hash)` and its proof `SHA256(data ‖ hash)`,
/// reading `data` once: both share the prefix, so the hasher state is cloned after it.
pub(crate) fn hash_and_proof(
    data: &[u8],
    random_hash: &[u8; RANDOM_HASH_LEN],
) -> (
    [u8; crate::hash::FULL_HASH_LEN],
    [u8; crate::hash::FULL_HASH_LEN],
) {
    finish_hash_and_proof(data_digest(data), random_hash)
}

/// The hasher state after `data`, the prefix of a resource's hash and proof (taken before
/// the data is encrypted in place, finished once the random hash is chosen).
pub(crate) fn data_digest(data: &[u8]) -> sha2::Sha256 {
    use sha2::Digest;
    sha2::Sha256::new().chain_update(data)
}

/// [`hash_and_proof`] from the hasher state after the data.
pub(crate) fn finish_hash_and_proof(
    prefix: sha2::Sha256,
    random_hash: &[u8; RANDOM_HASH_LEN],
) -> (
    [u8; crate::hash::FULL_HASH_LEN],
    [u8; crate::hash::FULL_HASH_LEN],
) {
    use sha2::Digest;
    let hash: [u8; crate::hash::FULL_HASH_LEN] =
        prefix.clone().chain_update(random_hash).finalize().into();
    let proof = prefix.chain_update(hash).finalize().into();
    (hash, proof)
}

/// Bytes looked at to judge whether data is worth offering to bz2.
const COMPRESSIBILITY_SAMPLE: usize = 64 * 1024;
/// Bytes actually compressed when the byte statistics leave it open.
const COMPRESSION_TRIAL: usize = 16 * 1024;

/// Whether bz2 is likely to shrink `data`. Byte entropy near 8 bits (random, encrypted or
/// already-compressed data) rules it out cheaply; otherwise a small trial compression
/// decides, so incompressible data never costs a full bz2 pass.
pub(crate) fn worth_compressing(data: &[u8]) -> bool {
    let sample = &data[..data.len().min(COMPRESSIBILITY_SAMPLE)];
    if sample.len() >= 4096 && byte_entropy(sample) > 7.9 {
        return false;
    }
    let trial = &data[..data.len().min(COMPRESSION_TRIAL)];
    trial.len() < 64 || compress(trial).is_some_and(|c| c.len() < trial.len() * 95 / 100)
}

/// Shannon entropy of the byte distribution, in bits per byte.
fn byte_entropy(data: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in data {
        counts[usize::from(b)] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Compress with bz2 (level 9, as Python's default).
pub(crate) fn compress(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// Decompress bz2, refusing output larger than `max` (a decompression bomb).
pub(crate) fn decompress(data: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut dec = bzip2::read::BzDecoder::new(data).take(max as u64 + 1);
    dec.read_to_end(&mut out).ok()?;
    (out.len() <= max).then_some(out)
}

/// Prefix data with RNS resource metadata: 3-byte big-endian length ‖ msgpack(metadata).
pub fn with_metadata(metadata: &rmpv::Value, data: &[u8]) -> Option<Vec<u8>> {
    let packed = crate::link::wire::encode_msgpack(metadata);
    if packed.len() > METADATA_MAX_SIZE {
        return None;
    }
    let mut out = Vec::with_capacity(3 + packed.len() + data.len());
    out.extend_from_slice(&(packed.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&packed);
    out.extend_from_slice(data);
    Some(out)
}

/// Split the metadata prefix off a first segment: (metadata, rest).
pub fn split_metadata(data: &[u8]) -> Option<(rmpv::Value, &[u8])> {
    if data.len() < 3 {
        return None;
    }
    let len = (usize::from(data[0]) << 16) | (usize::from(data[1]) << 8) | usize::from(data[2]);
    let packed = data.get(3..3 + len)?;
    let v = crate::link::wire::decode_msgpack(packed).ok()?;
    Some((v, &data[3 + len..]))
}

#[cfg(test)]
mod tests;
