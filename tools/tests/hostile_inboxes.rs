//! Attack: many links stream data to the victim's `grid.node` and nobody reads it. Each
//! link's inbox is bounded (16 MiB of stream data), and so are all of them together
//! (64 MiB), so the victim's memory stays bounded however many links the attacker opens.

mod common;

use std::time::Duration;

use common::hostile::*;
use common::*;
use rns_core::AddressHash;

const LINKS: usize = 40;
const PER_LINK: usize = 4 * 1024 * 1024;

#[test]
fn unread_streams_on_many_links_cannot_fill_memory() {
    let _slot = slot();
    let (mut v, port) = victim("");
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let v_hash: AddressHash = v_dest.parse().unwrap();
    let m_dir = attacker_dir("streamer", port);
    let rt = runtime();
    let (sent, peak) = peak_rss_during(&v, || {
        rt.block_on(async {
            let m = grid::api::spawn(grid::state::StateDir::resolve(Some(&m_dir.0)))
                .await
                .unwrap();
            let mut links = Vec::new();
            for _ in 0..LINKS {
                let up = m.open_link(v_hash, Duration::from_secs(20)).await.unwrap();
                m.identify(up.link).await.unwrap();
                links.push(up.link);
            }
            // Eight streams at a time, so the attacker's own channels keep up.
            let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
            let mut set = tokio::task::JoinSet::new();
            for (i, link) in links.into_iter().enumerate() {
                let (m, gate) = (m.clone(), gate.clone());
                set.spawn(async move {
                    let _permit = gate.acquire().await;
                    let data = noise(i as u64 + 1, PER_LINK);
                    m.stream_write(link, 1, &data, false, Duration::from_secs(300))
                        .await
                        .map(|()| data.len())
                });
            }
            let mut sent = 0;
            while let Some(r) = set.join_next().await {
                match r.unwrap() {
                    Ok(n) => sent += n,
                    Err(e) => eprintln!("a stream did not finish: {e}"),
                }
            }
            m.shutdown();
            sent
        })
    });
    eprintln!(
        "{LINKS} links streamed {} MiB that nobody read",
        sent / (1024 * 1024)
    );
    // Well past the node-wide budget (64 MiB) was delivered and proven.
    assert!(sent >= 96 * 1024 * 1024, "only {sent} bytes went through");
    assert_held(
        "unread streams on 40 links",
        &mut v,
        h,
        before,
        peak,
        140 * 1024,
    );
}
