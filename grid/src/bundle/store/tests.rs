//! Tests of the bundle store.

use super::*;
use crate::test_util::TempDir;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn bundle(id: u8, dest: u8, created_ms: u64, size: usize) -> StoredBundle {
    StoredBundle {
        id: [id; 16],
        destination: [dest; 16],
        created_ms,
        expires_ms: created_ms + 1_000,
        custody: id.is_multiple_of(2),
        sealed: vec![id; size],
    }
}

fn open(dir: &TempDir, quota: u64) -> BundleStore {
    BundleStore::open(&dir.0.join("sub").join("bundles.redb"), quota).unwrap()
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BundleStore>();
}

#[test]
fn record_encoding_is_postcard_of_stored_bundle() {
    let b = bundle(7, 3, 1234, 300);
    let ours = postcard::to_allocvec(&Record::of(&b)).unwrap();
    assert_eq!(ours, postcard::to_allocvec(&b).unwrap());
    let back: StoredBundle = postcard::from_bytes(&ours).unwrap();
    assert_eq!(back, b);
    assert_eq!(decode(&b.id, &ours).unwrap().to_bundle(), b);
    assert!(decode(&[9; 16], &ours).is_none(), "id must match the key");
    assert!(decode(&b.id, &ours[..ours.len() - 1]).is_none());
    let mut long = ours.clone();
    long.push(0);
    assert!(decode(&b.id, &long).is_none(), "trailing bytes rejected");
}

#[test]
fn strangers_get_a_bounded_share_that_is_freed_as_bundles_leave() {
    let dir = TempDir::new("bundles-strangers");
    let limits = StrangerLimits {
        bundles: 3,
        bytes: 250,
        total_bytes: 400,
    };
    let (x, y, z) = ([0xa1; 16], [0xb2; 16], [0xc3; 16]);
    {
        let s = open(&dir, 1000);
        for i in 1..=3 {
            assert_eq!(
                s.insert_held(&bundle(i, 9, 10, 50), &x, &limits).unwrap(),
                Inserted::New
            );
        }
        // One stranger's count, then its bytes, then all strangers' bytes.
        let e = s
            .insert_held(&bundle(4, 9, 10, 50), &x, &limits)
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::StrangerQuota {
                    what: "bundles of one stranger",
                    ..
                }
            ),
            "{e}"
        );
        let e = s
            .insert_held(&bundle(5, 9, 10, 260), &y, &limits)
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::StrangerQuota {
                    what: "bytes of one stranger",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            s.insert_held(&bundle(6, 9, 10, 200), &y, &limits).unwrap(),
            Inserted::New
        );
        let e = s
            .insert_held(&bundle(7, 9, 10, 100), &z, &limits)
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::StrangerQuota {
                    what: "bytes of all strangers",
                    ..
                }
            ),
            "{e}"
        );
        // The node's own bundles still fit.
        assert_eq!(s.insert(&bundle(8, 9, 10, 500)).unwrap(), Inserted::New);
        assert_eq!(s.held_for(&x).unwrap(), (3, 150));
    }
    // Durable: the shares are there after a reopen, and freed by delivery and expiry.
    let s = open(&dir, 1000);
    assert_eq!(s.held_for(&x).unwrap(), (3, 150));
    assert_eq!(s.remove(&[[1; 16]]).unwrap(), 1);
    assert_eq!(s.held_for(&x).unwrap(), (2, 100));
    assert_eq!(s.expire(2_000).unwrap(), 4);
    assert_eq!(s.held_for(&x).unwrap(), (0, 0));
    assert_eq!(s.held_for(&y).unwrap(), (0, 0));
    assert_eq!(
        s.insert_held(&bundle(7, 9, 3_000, 100), &z, &limits)
            .unwrap(),
        Inserted::New
    );
}

#[test]
fn delivered_bundles_are_not_stored_again() {
    let dir = TempDir::new("bundles-delivered");
    let s = open(&dir, 1 << 20);
    let a = bundle(1, 9, 10, 100);
    assert_eq!(s.insert(&a).unwrap(), Inserted::New);
    assert_eq!(s.remove_delivered(&[a.id, [7; 16]]).unwrap(), 1);
    assert_eq!(s.get(&a.id).unwrap(), None);
    // Handed over again by a sender that crashed before dropping its copy: not kept.
    assert_eq!(s.insert(&a).unwrap(), Inserted::Duplicate);
    assert_eq!(s.stats().unwrap().bundles, 0);
    // Until it expires.
    s.expire(a.expires_ms + 1).unwrap();
    assert_eq!(s.insert(&a).unwrap(), Inserted::New);
}

#[test]
fn insert_get_remove() {
    let dir = TempDir::new("bundles-basic");
    let s = open(&dir, 1 << 20);
    let a = bundle(1, 9, 10, 100);
    let b = bundle(2, 9, 20, 50);
    assert_eq!(s.insert(&a).unwrap(), Inserted::New);
    assert_eq!(s.insert(&b).unwrap(), Inserted::New);
    assert_eq!(s.get(&a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.get(&[3; 16]).unwrap(), None);
    assert_eq!(
        s.stats().unwrap(),
        StoreStats {
            bundles: 2,
            bytes: 150,
            destinations: 1
        }
    );
    assert_eq!(s.remove(&[a.id, [3; 16], a.id]).unwrap(), 1);
    assert_eq!(s.get(&a.id).unwrap(), None);
    assert_eq!(s.get(&b.id).unwrap(), Some(b.clone()));
    assert_eq!(s.stats().unwrap().bytes, 50);
    assert_eq!(s.remove(&[]).unwrap(), 0);
    assert_eq!(s.remove(&[b.id]).unwrap(), 1);
    assert_eq!(s.stats().unwrap(), StoreStats::default());
    assert!(s.destinations().unwrap().is_empty());
}

#[test]
fn duplicates_and_seen() {
    let dir = TempDir::new("bundles-dup");
    let s = open(&dir, 1 << 20);
    let a = bundle(1, 9, 10, 100);
    assert_eq!(s.insert(&a).unwrap(), Inserted::New);
    let mut changed = a.clone();
    changed.sealed = vec![0; 10];
    assert_eq!(s.insert(&changed).unwrap(), Inserted::Duplicate);
    assert_eq!(s.get(&a.id).unwrap(), Some(a.clone()), "first copy kept");
    assert_eq!(s.stats().unwrap().bytes, 100);

    let b = bundle(2, 9, 10, 100);
    assert!(!s.is_seen(&b.id).unwrap());
    assert!(s.mark_seen(&b.id, 5_000).unwrap());
    assert!(!s.mark_seen(&b.id, 4_000).unwrap());
    assert!(s.is_seen(&b.id).unwrap());
    assert_eq!(s.insert(&b).unwrap(), Inserted::Duplicate);
    assert_eq!(s.get(&b.id).unwrap(), None);
    // Marking extends but never shortens: at 4_500 the mark (5_000) is still there.
    s.expire(4_500).unwrap();
    assert!(s.is_seen(&b.id).unwrap());
    s.expire(5_001).unwrap();
    assert!(!s.is_seen(&b.id).unwrap());
    assert_eq!(s.insert(&b).unwrap(), Inserted::New);
}

#[test]
fn an_exchange_marks_seen_and_says_which_ids_it_saw_first() {
    let dir = TempDir::new("bundles-exchange");
    let s = open(&dir, 1 << 20);
    let limits = StrangerLimits {
        bundles: 10,
        bytes: 1 << 20,
        total_bytes: 1 << 20,
    };
    s.mark_seen(&[1; 16], 5_000).unwrap();
    let held = vec![(bundle(3, 9, 10, 100), None), (bundle(4, 9, 10, 100), None)];
    let first = s
        .commit_exchange(&[([1; 16], 5_000), ([2; 16], 5_000)], &held, &limits)
        .unwrap();
    assert_eq!(first.first_seen, [false, true], "1 was handled before");
    assert_eq!(first.held.len(), 2);
    assert!(first.held.iter().all(|r| matches!(r, Ok(Inserted::New))));
    assert!(s.is_seen(&[2; 16]).unwrap());
    // The same exchange again (a retry): nothing is new, nothing stored twice.
    let again = s
        .commit_exchange(&[([2; 16], 5_000)], &held, &limits)
        .unwrap();
    assert_eq!(again.first_seen, [false]);
    assert!(again
        .held
        .iter()
        .all(|r| matches!(r, Ok(Inserted::Duplicate))));
    assert_eq!(s.stats().unwrap().bundles, 2);
    let empty = s.commit_exchange(&[], &[], &limits).unwrap();
    assert!(empty.first_seen.is_empty() && empty.held.is_empty());
}

#[test]
fn too_large_refused() {
    let dir = TempDir::new("bundles-large");
    let s = open(&dir, u64::MAX);
    let mut b = bundle(1, 1, 1, 0);
    b.sealed = vec![0; MAX_SEALED_BYTES + 1];
    assert!(matches!(
        s.insert(&b),
        Err(StoreError::TooLarge { size, .. }) if size == MAX_SEALED_BYTES as u64 + 1
    ));
    assert!(matches!(
        s.put_job(1, &vec![0; MAX_JOB_RECORD_BYTES + 1]),
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(s.stats().unwrap(), StoreStats::default());
}

#[test]
fn for_destination_order_and_limits() {
    let dir = TempDir::new("bundles-dest");
    let s = open(&dir, 1 << 20);
    // Inserted out of order; two share a created time (then ordered by id).
    for (id, created, size) in [(5, 50, 10), (1, 10, 30), (3, 30, 20), (2, 30, 40)] {
        s.insert(&bundle(id, 7, created, size)).unwrap();
    }
    s.insert(&bundle(9, 8, 1, 10)).unwrap();
    let ids = |v: Vec<StoredBundle>| v.iter().map(|b| b.id[0]).collect::<Vec<_>>();
    assert_eq!(
        ids(s.for_destination(&[7; 16], usize::MAX, 100).unwrap()),
        [1, 2, 3, 5]
    );
    assert_eq!(
        ids(s.for_destination(&[7; 16], usize::MAX, 2).unwrap()),
        [1, 2]
    );
    assert_eq!(ids(s.for_destination(&[7; 16], 70, 100).unwrap()), [1, 2]);
    assert_eq!(ids(s.for_destination(&[7; 16], 69, 100).unwrap()), [1]);
    assert_eq!(
        ids(s.for_destination(&[7; 16], 90, 100).unwrap()),
        [1, 2, 3]
    );
    // At least one even when the first alone passes max_bytes.
    assert_eq!(ids(s.for_destination(&[7; 16], 0, 100).unwrap()), [1]);
    assert!(s
        .for_destination(&[7; 16], usize::MAX, 0)
        .unwrap()
        .is_empty());
    assert_eq!(ids(s.for_destination(&[8; 16], 0, 100).unwrap()), [9]);
    assert!(s.for_destination(&[6; 16], 100, 100).unwrap().is_empty());
    let full = s.for_destination(&[7; 16], usize::MAX, 1).unwrap();
    assert_eq!(full, vec![bundle(1, 7, 10, 30)]);
}

#[test]
fn destinations_counts() {
    let dir = TempDir::new("bundles-dests");
    let s = open(&dir, 1 << 20);
    s.insert(&bundle(1, 7, 1, 1)).unwrap();
    s.insert(&bundle(2, 7, 2, 1)).unwrap();
    s.insert(&bundle(3, 4, 3, 1)).unwrap();
    assert_eq!(s.destinations().unwrap(), vec![([4; 16], 1), ([7; 16], 2)]);
    assert_eq!(s.stats().unwrap().destinations, 2);
    s.remove(&[[3; 16]]).unwrap();
    assert_eq!(s.destinations().unwrap(), vec![([7; 16], 2)]);
    s.remove(&[[1; 16]]).unwrap();
    assert_eq!(s.destinations().unwrap(), vec![([7; 16], 1)]);
}

#[test]
fn expire_drops_old_bundles_and_marks() {
    let dir = TempDir::new("bundles-expire");
    let s = open(&dir, 1 << 20);
    // expires = created + 1000
    s.insert(&bundle(1, 7, 0, 10)).unwrap();
    s.insert(&bundle(2, 7, 500, 20)).unwrap();
    s.insert(&bundle(3, 8, 2_000, 30)).unwrap();
    s.mark_seen(&[10; 16], 1_200).unwrap();
    s.mark_seen(&[11; 16], 9_000).unwrap();
    assert_eq!(s.expire(1_000).unwrap(), 0, "expiry exactly now is kept");
    assert_eq!(s.expire(1_001).unwrap(), 1);
    assert_eq!(s.get(&[1; 16]).unwrap(), None);
    assert!(s.is_seen(&[10; 16]).unwrap());
    assert_eq!(s.expire(1_600).unwrap(), 1);
    assert!(!s.is_seen(&[10; 16]).unwrap());
    assert!(s.is_seen(&[11; 16]).unwrap());
    assert_eq!(
        s.stats().unwrap(),
        StoreStats {
            bundles: 1,
            bytes: 30,
            destinations: 1
        }
    );
    assert_eq!(s.destinations().unwrap(), vec![([8; 16], 1)]);
    assert_eq!(s.expire(1_600).unwrap(), 0);
}

#[test]
fn quota_exceeded_and_freed() {
    let dir = TempDir::new("bundles-quota");
    let s = open(&dir, 100);
    s.insert(&bundle(1, 7, 1, 60)).unwrap();
    s.insert(&bundle(2, 7, 2, 40)).unwrap(); // exactly at quota
    match s.insert(&bundle(3, 7, 3, 1)) {
        Err(StoreError::QuotaExceeded { used, quota, size }) => {
            assert_eq!((used, quota, size), (100, 100, 1))
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(s.get(&[3; 16]).unwrap(), None);
    s.remove(&[[1; 16]]).unwrap();
    assert_eq!(s.insert(&bundle(3, 7, 3, 60)).unwrap(), Inserted::New);
    assert_eq!(s.stats().unwrap().bytes, 100);
}

#[test]
fn reopen_keeps_everything() {
    let dir = TempDir::new("bundles-reopen");
    {
        let s = open(&dir, 1 << 20);
        s.insert(&bundle(1, 7, 1, 10)).unwrap();
        s.insert(&bundle(2, 8, 2, 20)).unwrap();
        s.insert(&bundle(3, 8, 3, 30)).unwrap();
        s.remove(&[[3; 16]]).unwrap();
        s.mark_seen(&[9; 16], 5_000).unwrap();
        s.put_job(42, b"result").unwrap();
    }
    let s = open(&dir, 1 << 20);
    assert_eq!(
        s.stats().unwrap(),
        StoreStats {
            bundles: 2,
            bytes: 30,
            destinations: 2
        }
    );
    assert_eq!(s.get(&[2; 16]).unwrap(), Some(bundle(2, 8, 2, 20)));
    assert_eq!(s.destinations().unwrap(), vec![([7; 16], 1), ([8; 16], 1)]);
    assert!(s.is_seen(&[9; 16]).unwrap());
    assert_eq!(s.insert(&bundle(9, 1, 1, 1)).unwrap(), Inserted::Duplicate);
    assert_eq!(s.get_job(42).unwrap(), Some(b"result".to_vec()));
    // The reopened quota applies to the persisted total.
    drop(s);
    let s = open(&dir, 35);
    assert!(matches!(
        s.insert(&bundle(4, 7, 4, 6)),
        Err(StoreError::QuotaExceeded { used: 30, .. })
    ));
}

#[test]
fn garbage_record_is_skipped_and_cleaned() {
    let dir = TempDir::new("bundles-garbage");
    let path = dir.0.join("sub").join("bundles.redb");
    {
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        for id in 1..=3 {
            s.insert(&bundle(id, 7, id as u64, 10)).unwrap();
        }
    }
    let write_garbage = |id: Id, raw: &[u8]| {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(BUNDLES).unwrap().insert(&id, raw).unwrap();
        txn.commit().unwrap();
    };
    write_garbage([2; 16], &[0xff; 7]);

    // A scan skips it (and cleans it up).
    let s = BundleStore::open(&path, 1 << 20).unwrap();
    let got = s.for_destination(&[7; 16], usize::MAX, 10).unwrap();
    assert_eq!(
        got.iter().map(|b| b.id[0]).collect::<Vec<_>>(),
        [1, 3],
        "garbage skipped"
    );
    assert_eq!(s.get(&[2; 16]).unwrap(), None, "garbage removed");
    assert_eq!(
        s.stats().unwrap(),
        StoreStats {
            bundles: 2,
            bytes: 20,
            destinations: 1
        }
    );
    assert_eq!(s.destinations().unwrap(), vec![([7; 16], 2)]);
    drop(s);

    // A direct get reports it as corrupt, once; a record under the wrong key counts too.
    write_garbage(
        [1; 16],
        &postcard::to_allocvec(&bundle(5, 7, 5, 10)).unwrap(),
    );
    let s = BundleStore::open(&path, 1 << 20).unwrap();
    assert!(matches!(s.get(&[1; 16]), Err(StoreError::Corrupt(_))));
    assert_eq!(s.get(&[1; 16]).unwrap(), None);
    assert_eq!(s.stats().unwrap().bytes, 10);
    drop(s);

    // A remove of a garbage record counts it and keeps the totals right.
    write_garbage([3; 16], b"");
    write_garbage([4; 16], b"not a bundle"); // no index entries at all: found on open
    let s = BundleStore::open(&path, 1 << 20).unwrap();
    assert_eq!(s.stats().unwrap(), StoreStats::default());
    assert_eq!(s.remove(&[[3; 16]]).unwrap(), 0);
    assert!(s.destinations().unwrap().is_empty());
    assert_eq!(s.insert(&bundle(3, 7, 3, 10)).unwrap(), Inserted::New);
    assert_eq!(s.stats().unwrap().bytes, 10);
}

#[test]
fn garbage_found_by_remove_and_expire() {
    let dir = TempDir::new("bundles-garbage-rm");
    let path = dir.0.join("bundles.redb");
    {
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        for id in 1..=3 {
            s.insert(&bundle(id, 7, id as u64, 10)).unwrap();
        }
        let txn = s.db.begin_write().unwrap();
        txn.open_table(BUNDLES)
            .unwrap()
            .insert(&[1; 16], &b"junk"[..])
            .unwrap();
        txn.open_table(BUNDLES)
            .unwrap()
            .insert(&[2; 16], &b"junk"[..])
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(s.remove(&[[1; 16]]).unwrap(), 1);
        assert_eq!(
            s.stats().unwrap(),
            StoreStats {
                bundles: 1,
                bytes: 10,
                destinations: 1
            },
            "remove rebuilt the totals and dropped the other garbage too"
        );
        assert_eq!(s.expire(u64::MAX).unwrap(), 1);
        assert_eq!(s.stats().unwrap(), StoreStats::default());
    }
}

#[test]
fn seen_is_bounded() {
    let dir = TempDir::new("bundles-seen-bound");
    let s = open(&dir, 1 << 20);
    // Fill to the bound in one transaction (one per mark would be slow in a test).
    s.write("fill", |t| {
        for i in 0..MAX_SEEN {
            let id = (i as u128).to_be_bytes();
            t.mark_seen(&id, 1_000_000 + i)?;
        }
        Ok(((), true))
    })
    .unwrap();
    assert!(s.is_seen(&0u128.to_be_bytes()).unwrap());
    // One more, expiring late: the soonest-expiring mark (id 0) goes.
    assert!(s.mark_seen(&[0xee; 16], u64::MAX).unwrap());
    assert!(!s.is_seen(&0u128.to_be_bytes()).unwrap());
    assert!(s.is_seen(&1u128.to_be_bytes()).unwrap());
    assert!(s.is_seen(&[0xee; 16]).unwrap());
    let txn = s.db.begin_read().unwrap();
    assert_eq!(txn.open_table(SEEN).unwrap().len().unwrap(), MAX_SEEN);
    assert_eq!(
        txn.open_table(SEEN_BY_EXPIRY).unwrap().len().unwrap(),
        MAX_SEEN
    );
}

#[test]
fn jobs_put_get_overwrite_remove() {
    let dir = TempDir::new("bundles-jobs");
    let s = open(&dir, 1 << 20);
    assert_eq!(s.get_job(1).unwrap(), None);
    s.put_job(1, b"one").unwrap();
    s.put_job(2, b"two").unwrap();
    s.put_job(3, b"").unwrap();
    assert_eq!(s.get_job(1).unwrap(), Some(b"one".to_vec()));
    s.put_job(1, b"uno").unwrap();
    assert_eq!(s.get_job(1).unwrap(), Some(b"uno".to_vec()));
    assert_eq!(
        s.jobs().unwrap(),
        vec![(2, b"two".to_vec()), (3, Vec::new()), (1, b"uno".to_vec())],
        "oldest-written first; the overwrite moved job 1 last"
    );
    s.remove_job(2).unwrap();
    s.remove_job(99).unwrap();
    assert_eq!(s.get_job(2).unwrap(), None);
    assert_eq!(s.jobs().unwrap().len(), 2);
}

#[test]
fn jobs_are_bounded() {
    let dir = TempDir::new("bundles-jobs-bound");
    let s = open(&dir, 1 << 20);
    // Fill past nothing yet in one transaction, then go over the bound through the API.
    s.write("fill", |t| {
        for corr in 0..MAX_JOBS {
            let seq = corr + 1;
            t.jobs.insert(corr, (seq, &b"x"[..])).unwrap();
            t.job_order.insert(seq, corr).unwrap();
        }
        t.meta_set(META_JOB_SEQ, MAX_JOBS)?;
        Ok(((), true))
    })
    .unwrap();
    s.put_job(0, b"rewritten").unwrap(); // overwrite: no eviction, 0 becomes newest
    assert_eq!(s.jobs().unwrap().len() as u64, MAX_JOBS);
    s.put_job(MAX_JOBS + 5, b"new").unwrap();
    let jobs = s.jobs().unwrap();
    assert_eq!(jobs.len() as u64, MAX_JOBS);
    assert_eq!(s.get_job(1).unwrap(), None, "oldest-written evicted");
    assert_eq!(s.get_job(0).unwrap(), Some(b"rewritten".to_vec()));
    assert_eq!(jobs.last().unwrap().0, MAX_JOBS + 5);
    assert_eq!(jobs[jobs.len() - 2].0, 0);
}

#[test]
fn inconsistent_indexes_rebuilt_on_open() {
    let dir = TempDir::new("bundles-rebuild");
    let path = dir.0.join("bundles.redb");
    {
        let s = BundleStore::open(&path, 1 << 20).unwrap();
        s.insert(&bundle(1, 7, 1, 10)).unwrap();
        s.insert(&bundle(2, 8, 2, 20)).unwrap();
        s.mark_seen(&[5; 16], 100).unwrap();
        s.put_job(1, b"a").unwrap();
        let txn = s.db.begin_write().unwrap();
        txn.delete_table(BY_DEST).unwrap();
        txn.delete_table(SEEN_BY_EXPIRY).unwrap();
        txn.delete_table(JOB_ORDER).unwrap();
        txn.open_table(META).unwrap().remove(META_BYTES).unwrap();
        txn.commit().unwrap();
    }
    let s = BundleStore::open(&path, 1 << 20).unwrap();
    assert_eq!(
        s.stats().unwrap(),
        StoreStats {
            bundles: 2,
            bytes: 30,
            destinations: 2
        }
    );
    assert_eq!(s.for_destination(&[8; 16], 100, 10).unwrap().len(), 1);
    assert_eq!(s.expire(200).unwrap(), 0);
    assert!(!s.is_seen(&[5; 16]).unwrap());
    assert_eq!(s.jobs().unwrap(), vec![(1, b"a".to_vec())]);
    s.put_job(2, b"b").unwrap();
    assert_eq!(s.jobs().unwrap().len(), 2);
}

#[test]
fn bench_rates_runs() {
    let dir = TempDir::new("bundles-bench");
    let (w, r) = bench_rates(&dir.0, 20, 256).unwrap();
    assert!(w > 0.0 && r > 0.0);
    assert!(!dir.0.join("bench-bundles.redb").exists());
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        id: u8,
        dest: u8,
        created: u64,
        size: usize,
    },
    Remove(Vec<u8>),
    Expire(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..24, 0u8..4, 0u64..2_000, 0usize..300).prop_map(|(id, dest, created, size)| {
            Op::Insert { id, dest, created, size }
        }),
        1 => proptest::collection::vec(0u8..24, 0..4).prop_map(Op::Remove),
        1 => (0u64..3_000).prop_map(Op::Expire),
    ]
}

static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn stats_track_stored_bundles(ops in proptest::collection::vec(op(), 1..24)) {
        let n = CASE.fetch_add(1, Ordering::Relaxed);
        let dir = TempDir::new(&format!("bundles-prop-{n}"));
        let quota = 2_000u64;
        let s = open(&dir, quota);
        let mut model: BTreeMap<u8, StoredBundle> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert { id, dest, created, size } => {
                    let b = StoredBundle { sealed: vec![id; size], ..bundle(id, dest, created, 0) };
                    let used: u64 = model.values().map(|b| b.sealed.len() as u64).sum();
                    let got = s.insert(&b);
                    match model.entry(id) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            prop_assert_eq!(got.unwrap(), Inserted::Duplicate);
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            if used + size as u64 > quota {
                                let hit = matches!(got, Err(StoreError::QuotaExceeded { .. }));
                                prop_assert!(hit);
                            } else {
                                prop_assert_eq!(got.unwrap(), Inserted::New);
                                slot.insert(b);
                            }
                        }
                    }
                }
                Op::Remove(ids) => {
                    let ids: Vec<Id> = ids.iter().map(|i| [*i; 16]).collect();
                    let mut expect = 0;
                    for id in &ids {
                        if model.remove(&id[0]).is_some() {
                            expect += 1;
                        }
                    }
                    prop_assert_eq!(s.remove(&ids).unwrap(), expect);
                }
                Op::Expire(now) => {
                    let before = model.len();
                    model.retain(|_, b| b.expires_ms >= now);
                    prop_assert_eq!(s.expire(now).unwrap(), before - model.len());
                }
            }
            let stats = s.stats().unwrap();
            let bytes: u64 = model.values().map(|b| b.sealed.len() as u64).sum();
            prop_assert_eq!(stats.bytes, bytes);
            prop_assert_eq!(stats.bundles, model.len() as u64);
        }
        // Everything stored is what the model holds, and per-destination views agree.
        for id in 0u8..24 {
            let got = s.get(&[id; 16]).unwrap();
            prop_assert_eq!(got.as_ref(), model.get(&id));
        }
        let mut dests: BTreeMap<Id, u64> = BTreeMap::new();
        for b in model.values() {
            *dests.entry(b.destination).or_default() += 1;
        }
        prop_assert_eq!(s.destinations().unwrap(), dests.into_iter().collect::<Vec<_>>());
        drop(s);
        let s = open(&dir, quota);
        let bytes: u64 = model.values().map(|b| b.sealed.len() as u64).sum();
        prop_assert_eq!(s.stats().unwrap().bytes, bytes);
    }
}
