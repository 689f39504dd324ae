//! Resource advertisements: a msgpack map with one-letter string keys.

use rmpv::Value;

use super::{flags, HASHMAP_MAX_LEN, MAPHASH_LEN, MAX_EFFICIENT_SIZE, RANDOM_HASH_LEN};
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::link::wire::{decode_msgpack, encode_msgpack};

/// Why an advertisement is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdvertisementError {
    /// Not a msgpack map with the expected keys and types.
    #[error("malformed resource advertisement")]
    Malformed,
    /// A size or count is out of bounds.
    #[error("resource advertisement out of bounds: {0}")]
    Bounds(&'static str),
}

/// A parsed (or to-be-sent) advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// Transfer size: encrypted size of this segment.
    pub transfer_size: u64,
    /// Total data size (all segments, with metadata, uncompressed).
    pub data_size: u64,
    /// Number of parts.
    pub parts: u64,
    /// Resource hash: SHA-256 of the segment's data and random hash.
    pub hash: [u8; FULL_HASH_LEN],
    /// Random hash mixed into map hashes.
    pub random_hash: [u8; RANDOM_HASH_LEN],
    /// Hash of the first segment (identifies a multi-segment resource).
    pub original_hash: [u8; FULL_HASH_LEN],
    /// Segment index, 1-based.
    pub segment_index: u64,
    /// Number of segments.
    pub total_segments: u64,
    /// Request id this resource is a request or response for.
    pub request_id: Option<AddressHash>,
    /// Flag bits (see [`flags`]).
    pub flags: u8,
    /// This advertisement's slice of the hashmap (≤ 74 map hashes).
    pub hashmap: Vec<u8>,
}

/// Where one resource segment belongs: its own hash, the transfer it is part of and that
/// transfer's size. Links report segments offered, received and sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Resource (segment) hash.
    pub hash: [u8; FULL_HASH_LEN],
    /// Hash of the first segment: the same for all segments of one transfer.
    pub original_hash: [u8; FULL_HASH_LEN],
    /// Segment index, 1-based.
    pub segment_index: u64,
    /// Number of segments.
    pub total_segments: u64,
    /// Total data size over all segments, metadata included.
    pub total_size: u64,
    /// Bytes this segment takes on the wire (encrypted, maybe compressed).
    pub transfer_size: u64,
    /// Whether the first segment starts with metadata.
    pub has_metadata: bool,
}

impl SegmentInfo {
    /// Whether this is the transfer's last segment.
    pub fn is_last(&self) -> bool {
        self.segment_index >= self.total_segments
    }
}

fn get<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn uint(map: &[(Value, Value)], key: &str) -> Result<u64, AdvertisementError> {
    get(map, key)
        .and_then(Value::as_u64)
        .ok_or(AdvertisementError::Malformed)
}

fn bin<const N: usize>(map: &[(Value, Value)], key: &str) -> Result<[u8; N], AdvertisementError> {
    match get(map, key) {
        Some(Value::Binary(b)) => b
            .as_slice()
            .try_into()
            .map_err(|_| AdvertisementError::Malformed),
        _ => Err(AdvertisementError::Malformed),
    }
}

impl Advertisement {
    /// The segment this advertisement offers.
    pub fn segment(&self) -> SegmentInfo {
        SegmentInfo {
            hash: self.hash,
            original_hash: self.original_hash,
            segment_index: self.segment_index,
            total_segments: self.total_segments,
            total_size: self.data_size,
            transfer_size: self.transfer_size,
            has_metadata: self.has_metadata(),
        }
    }

    /// Flag: the data is encrypted with the link key.
    pub fn encrypted(&self) -> bool {
        self.flags & flags::ENCRYPTED != 0
    }
    /// Flag: the data is bz2-compressed.
    pub fn compressed(&self) -> bool {
        self.flags & flags::COMPRESSED != 0
    }
    /// Flag: this is a request sent as a resource.
    pub fn is_request(&self) -> bool {
        self.flags & flags::IS_REQUEST != 0 && self.request_id.is_some()
    }
    /// Flag: this is a response sent as a resource.
    pub fn is_response(&self) -> bool {
        self.flags & flags::IS_RESPONSE != 0 && self.request_id.is_some()
    }
    /// Flag: the first segment starts with metadata.
    pub fn has_metadata(&self) -> bool {
        self.flags & flags::HAS_METADATA != 0
    }

    /// Serialize to the msgpack map RNS expects.
    pub fn pack(&self) -> Vec<u8> {
        let s = |k: &str| Value::from(k);
        encode_msgpack(&Value::Map(vec![
            (s("t"), Value::from(self.transfer_size)),
            (s("d"), Value::from(self.data_size)),
            (s("n"), Value::from(self.parts)),
            (s("h"), Value::Binary(self.hash.to_vec())),
            (s("r"), Value::Binary(self.random_hash.to_vec())),
            (s("o"), Value::Binary(self.original_hash.to_vec())),
            (s("i"), Value::from(self.segment_index)),
            (s("l"), Value::from(self.total_segments)),
            (
                s("q"),
                self.request_id
                    .map_or(Value::Nil, |q| Value::Binary(q.0.to_vec())),
            ),
            (s("f"), Value::from(self.flags)),
            (s("m"), Value::Binary(self.hashmap.clone())),
        ]))
    }

    /// Parse and bounds-check an advertisement. Nothing is allocated by claimed sizes.
    pub fn unpack(data: &[u8]) -> Result<Advertisement, AdvertisementError> {
        let Value::Map(map) = decode_msgpack(data).map_err(|_| AdvertisementError::Malformed)?
        else {
            return Err(AdvertisementError::Malformed);
        };
        let request_id = match get(&map, "q") {
            None | Some(Value::Nil) => None,
            Some(Value::Binary(b)) => {
                Some(AddressHash::from_slice(b).ok_or(AdvertisementError::Malformed)?)
            }
            _ => return Err(AdvertisementError::Malformed),
        };
        let hashmap = match get(&map, "m") {
            Some(Value::Binary(b)) => b.clone(),
            _ => return Err(AdvertisementError::Malformed),
        };
        let adv = Advertisement {
            transfer_size: uint(&map, "t")?,
            data_size: uint(&map, "d")?,
            parts: uint(&map, "n")?,
            hash: bin(&map, "h")?,
            random_hash: bin(&map, "r")?,
            original_hash: bin(&map, "o")?,
            segment_index: uint(&map, "i")?,
            total_segments: uint(&map, "l")?,
            request_id,
            flags: u8::try_from(uint(&map, "f")?).map_err(|_| AdvertisementError::Malformed)?,
            hashmap,
        };
        if adv.transfer_size == 0 || adv.transfer_size > 3 * MAX_EFFICIENT_SIZE as u64 {
            return Err(AdvertisementError::Bounds("transfer size"));
        }
        if adv.hashmap.is_empty()
            || !adv.hashmap.len().is_multiple_of(MAPHASH_LEN)
            || adv.hashmap.len() > HASHMAP_MAX_LEN * MAPHASH_LEN
        {
            return Err(AdvertisementError::Bounds("hashmap"));
        }
        if adv.segment_index == 0
            || adv.segment_index > adv.total_segments
            || adv.total_segments > 1 << 24
        {
            return Err(AdvertisementError::Bounds("segments"));
        }
        Ok(adv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Advertisement {
        Advertisement {
            transfer_size: 3000,
            data_size: 2900,
            parts: 7,
            hash: [1; 32],
            random_hash: [2; 4],
            original_hash: [1; 32],
            segment_index: 1,
            total_segments: 1,
            request_id: Some(AddressHash([9; 16])),
            flags: flags::ENCRYPTED | flags::IS_REQUEST,
            hashmap: vec![7; 28],
        }
    }

    #[test]
    fn round_trip_and_flags() {
        let a = sample();
        let b = Advertisement::unpack(&a.pack()).unwrap();
        assert_eq!(a, b);
        assert!(b.encrypted() && b.is_request() && !b.is_response() && !b.compressed());
        let mut c = sample();
        c.request_id = None;
        assert!(!Advertisement::unpack(&c.pack()).unwrap().is_request());
    }

    #[test]
    fn hostile_values_are_refused() {
        let mut a = sample();
        a.transfer_size = u64::MAX;
        assert_eq!(
            Advertisement::unpack(&a.pack()),
            Err(AdvertisementError::Bounds("transfer size"))
        );
        let mut a = sample();
        a.hashmap = vec![0; 75 * 4];
        assert_eq!(
            Advertisement::unpack(&a.pack()),
            Err(AdvertisementError::Bounds("hashmap"))
        );
        let mut a = sample();
        a.segment_index = 3;
        a.total_segments = 2;
        assert_eq!(
            Advertisement::unpack(&a.pack()),
            Err(AdvertisementError::Bounds("segments"))
        );
        assert_eq!(
            Advertisement::unpack(b"\x90"),
            Err(AdvertisementError::Malformed)
        );
    }
}
