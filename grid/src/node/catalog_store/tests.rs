//! The catalog file: round trips, and files cut short, damaged, too large or from
//! another version refused without a panic; when writes are due.

use rns_core::Identity;

use super::*;
use crate::proto::flood::sketch::Sketch;
use crate::proto::gossip::entry::{Body, Record};
use crate::test_util::TempDir;

fn identity(n: u8) -> Identity {
    Identity::from_private_bytes(&[n; 64]).unwrap()
}

fn entry(who: &Identity, name: &str, seq: u64, tombstone: bool) -> Entry {
    let record = Record {
        seq,
        expires_ms: 1_800_000_000_000,
        tombstone,
        name: name.into(),
        summary: format!("what {name} does"),
        body: Body::Command {
            sketch: Sketch([seq as u8; 48]),
        },
    };
    Entry::sign(who, record).unwrap()
}

fn entries() -> Vec<Entry> {
    let (a, b) = (identity(1), identity(2));
    vec![
        entry(&a, "one", 1, false),
        entry(&a, "two", 3, true),
        entry(&b, "three", 2, false),
    ]
}

fn file_of(entries: &[Entry]) -> Vec<u8> {
    seal(encode_entries(entries.iter().map(Entry::bytes)))
}

/// `bytes` with the checksum made right again after a change.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len() - CHECKSUM);
    seal(bytes)
}

#[test]
fn a_file_round_trips_its_entries_through_disk() {
    let dir = TempDir::new("catalog-file");
    let path = dir.path().join("catalog");
    assert!(load(&path, 10).unwrap().is_none(), "no file yet");
    let all = entries();
    let body = encode_entries(all.iter().map(Entry::bytes));
    save(&path, body).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"GRIDCATL");
    assert_eq!(bytes[8], FORMAT_VERSION);
    assert_eq!(u32::from_be_bytes(bytes[9..13].try_into().unwrap()), 3);
    let stored = load(&path, 10).unwrap().unwrap();
    assert_eq!(stored.entries, all, "signatures checked, tombstone kept");
    assert!(stored.entries[1].is_tombstone());
    assert_eq!(stored.unreadable, 0);
    assert!(!dir.path().join("catalog.tmp").exists());
    // An empty catalog is a file too.
    save(&path, encode_entries(std::iter::empty())).unwrap();
    assert!(load(&path, 10).unwrap().unwrap().entries.is_empty());
}

#[test]
fn a_file_cut_short_or_damaged_is_refused() {
    let bytes = file_of(&entries());
    for n in 0..bytes.len() {
        let e = decode(&bytes[..n], 10).unwrap_err();
        assert!(
            matches!(e, StoreError::Truncated | StoreError::Checksum),
            "cut at {n}: {e}"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(decode(&b, 10).is_err(), "byte {i} changed, still accepted");
    }
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(matches!(decode(&b, 10), Err(StoreError::NotCatalog)));
    // The lengths are checked even under a good checksum.
    let mut trailing = bytes[..bytes.len() - CHECKSUM].to_vec();
    trailing.push(0);
    let e = decode(&seal(trailing), 10).unwrap_err();
    assert!(matches!(e, StoreError::Trailing(1)), "{e}");
    let mut short = bytes.clone();
    short[12] += 1; // one more entry than there is
    let e = decode(&resealed(short), 10).unwrap_err();
    assert!(matches!(e, StoreError::Truncated), "{e}");
    let mut long = encode_entries(std::iter::empty());
    long[12] = 1;
    long.extend_from_slice(&(MAX_ENTRY as u16 + 1).to_be_bytes());
    long.extend_from_slice(&[0; MAX_ENTRY + 1]);
    let e = decode(&seal(long), 10).unwrap_err();
    assert!(matches!(e, StoreError::EntryTooLong(406)), "{e}");
    // On disk, a torn file is an error to report, not a panic or an empty success.
    let dir = TempDir::new("catalog-torn");
    let path = dir.path().join("catalog");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load(&path, 10), Err(StoreError::Checksum)));
}

#[test]
fn a_file_of_another_version_is_refused() {
    let bytes = file_of(&entries());
    let mut newer = bytes.clone();
    newer[8] = FORMAT_VERSION + 1;
    let e = decode(&resealed(newer), 10).unwrap_err();
    assert!(matches!(e, StoreError::Newer(2)), "{e}");
    let mut never = bytes;
    never[8] = 0;
    let e = decode(&resealed(never), 10).unwrap_err();
    assert!(matches!(e, StoreError::Version(0)), "{e}");
}

#[test]
fn a_file_larger_than_the_catalog_bound_is_refused() {
    let all = entries();
    let bytes = file_of(&all);
    assert_eq!(decode(&bytes, 3).unwrap().len(), 3);
    let e = decode(&bytes, 2).unwrap_err();
    assert!(matches!(e, StoreError::TooMany { count: 3, max: 2 }), "{e}");
    let max = max_file_len(2);
    assert_eq!(max, 13 + 32 + 2 * 407);
    let mut padded = bytes.clone();
    padded.resize(max as usize + 1, 0);
    let e = decode(&padded, 2).unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { .. }), "{e}");
    // On disk it is refused by its length, before it is read.
    let dir = TempDir::new("catalog-big");
    let path = dir.path().join("catalog");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(max_file_len(10_000) + 1).unwrap();
    let e = load(&path, 10_000).unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { .. }), "{e}");
}

#[test]
fn entries_that_do_not_verify_are_left_out_and_counted() {
    let all = entries();
    let mut body = encode_entries(all.iter().map(Entry::bytes));
    // Change a byte of the second entry's name: the file is whole, the entry forged.
    let at = HEADER + 2 + all[0].bytes().len() + 2 + 85;
    body[at] ^= 0x01;
    let dir = TempDir::new("catalog-forged");
    let path = dir.path().join("catalog");
    save(&path, body).unwrap();
    let stored = load(&path, 10).unwrap().unwrap();
    assert_eq!(stored.unreadable, 1);
    assert_eq!(stored.entries, vec![all[0].clone(), all[2].clone()]);
}

#[test]
fn writes_wait_for_a_change_and_the_interval() {
    let t0 = Instant::from_secs(1_000);
    let mut s = Schedule::new(t0);
    assert_eq!(s.wake(), None, "nothing changed");
    assert!(!s.take(t0 + SAVE_INTERVAL, false));
    s.changed = true;
    assert_eq!(s.wake(), Some(t0 + SAVE_INTERVAL));
    assert!(!s.take(t0 + Duration::from_secs(29), false), "too soon");
    let t1 = t0 + SAVE_INTERVAL;
    assert!(s.take(t1, false));
    assert_eq!(s.wake(), None, "written");
    s.changed = true;
    assert!(
        !s.take(t1 + Duration::from_secs(1), false),
        "at most every 30 s"
    );
    let t2 = t1 + SAVE_INTERVAL;
    // The last write still running: try again a second later, not in a spin.
    assert!(!s.take(t2, true));
    assert_eq!(s.wake(), Some(t2 + BUSY_RETRY));
    assert!(s.take(t2 + BUSY_RETRY, false));
}
