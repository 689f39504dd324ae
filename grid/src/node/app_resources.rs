//! Resources for the application: offered on links to `grid.node` and to a program's own
//! destinations, assembled in memory (up to [`APP_RESOURCE_MAX`]) or written into a
//! directory the program chose, segment by segment on the writer thread
//! ([`super::file_writer`]), for resources of any size up to the program's limit.

use std::collections::HashMap;
use std::path::PathBuf;

use rns_core::link::{LinkId, ResourcePolicy};
use rns_core::resource::{split_metadata, SegmentInfo};
use rns_core::{rmpv, AddressHash, Instant};

use super::file_writer::WriteOp;
use super::files::IncomingKey;
use super::reply::Outcome;
use super::waiters::Wait;
use super::Node;
use crate::api::NodeEvent;

/// Largest resource assembled in memory for the application.
pub(super) const APP_RESOURCE_MAX: u64 = 64 * 1024 * 1024;
/// Application resources being received at once, at most.
const APP_RESOURCES_AT_ONCE: usize = 8;

/// Where the application's resources go.
#[derive(Debug, Clone, Default)]
pub(super) enum AppResourcePolicy {
    /// Refused.
    #[default]
    Refuse,
    /// Assembled in memory, up to [`APP_RESOURCE_MAX`].
    Memory,
    /// Written into a directory, up to a size each.
    Directory { dir: PathBuf, max_bytes: u64 },
}

/// A resource for the application, segments so far.
#[derive(Debug)]
pub(super) struct AppResource {
    /// The data so far (in memory), or nothing (written to a file).
    data: Vec<u8>,
    to_file: Option<ToFile>,
    remote: Option<AddressHash>,
    /// The segment being received now.
    segment: [u8; 32],
}

/// A resource being written into the application's directory.
#[derive(Debug)]
struct ToFile {
    dir: PathBuf,
    metadata: Option<rmpv::Value>,
    received: u64,
    total: u64,
}

/// Incoming application resources by link and original hash.
pub(super) type AppResources = HashMap<IncomingKey, AppResource>;

/// Resources written to files, waiting for the writer to put them in place.
pub(super) type SavingApp = HashMap<IncomingKey, (Option<rmpv::Value>, Option<AddressHash>)>;

/// A name for a saved resource: the sender's `name` metadata (its last component, not
/// hidden), else `resource-<hash>`.
fn saved_name(metadata: Option<&rmpv::Value>, original_hash: &[u8; 32]) -> String {
    let fallback = || format!("resource-{}", hex::encode(&original_hash[..8]));
    match metadata {
        Some(m) => {
            let name = super::files::safe_name(m);
            if name == super::files::UNNAMED {
                fallback()
            } else {
                name
            }
        }
        None => fallback(),
    }
}

impl Node {
    /// Accept the application's resources (in memory or into a directory) or stop.
    pub(super) fn set_app_resources(&mut self, policy: AppResourcePolicy) {
        let accept = !matches!(policy, AppResourcePolicy::Refuse);
        self.files.app_policy = policy;
        let policy = if accept {
            ResourcePolicy::App
        } else {
            ResourcePolicy::None
        };
        let d = self.grid_destination;
        self.transport.set_destination_resource_policy(&d, policy);
        let links: Vec<LinkId> = self
            .transport
            .links()
            .map(|l| l.id)
            .filter(|l| self.is_app_link(l))
            .collect();
        for l in links {
            let _ = self.transport.set_link_resource_policy(&l, policy);
        }
    }

    /// Whether a link's resources are the application's: every link except those to this
    /// node's `rncp.receive` destination, whose resources are files.
    pub(super) fn is_app_link(&self, link: &LinkId) -> bool {
        self.transport
            .link(link)
            .is_some_and(|l| Some(l.destination) != self.files.cp_destination)
    }

    /// A link came up: links we opened take resources too while the application accepts them.
    pub(super) fn app_link_established(&mut self, link: LinkId) {
        let accepting = !matches!(self.files.app_policy, AppResourcePolicy::Refuse);
        if accepting && self.is_app_link(&link) {
            let _ = self
                .transport
                .set_link_resource_policy(&link, ResourcePolicy::App);
        }
    }

    /// Accept or refuse a resource offered on an application link.
    pub(super) fn on_app_resource_offered(
        &mut self,
        now: Instant,
        link: LinkId,
        segment: &SegmentInfo,
        remote: Option<AddressHash>,
    ) {
        let hash = segment.hash;
        let key = (link, segment.original_hash);
        let accept = if segment.segment_index == 1 {
            let (fits, dir) = match &self.files.app_policy {
                AppResourcePolicy::Refuse => (false, None),
                AppResourcePolicy::Memory => (segment.total_size <= APP_RESOURCE_MAX, None),
                AppResourcePolicy::Directory { dir, max_bytes } => {
                    (segment.total_size <= *max_bytes, Some(dir.clone()))
                }
            };
            let ok = fits && self.files.incoming_app.len() < APP_RESOURCES_AT_ONCE;
            if ok {
                let to_file = dir.map(|dir| ToFile {
                    dir,
                    metadata: None,
                    received: 0,
                    total: segment.total_size,
                });
                self.files.incoming_app.insert(
                    key,
                    AppResource {
                        data: Vec::new(),
                        to_file,
                        remote,
                        segment: hash,
                    },
                );
            }
            ok
        } else {
            match self.files.incoming_app.get_mut(&key) {
                Some(r) => {
                    r.segment = hash;
                    true
                }
                None => false,
            }
        };
        let to_disk = self
            .files
            .incoming_app
            .get(&key)
            .is_some_and(|r| r.to_file.is_some());
        if !self.answer_segment_offer(now, link, hash, accept, to_disk) {
            self.files.incoming_app.remove(&key);
        }
    }

    /// A verified segment of an application resource arrived.
    pub(super) fn on_app_segment(&mut self, link: LinkId, segment: &SegmentInfo, data: Vec<u8>) {
        let key = (link, segment.original_hash);
        let Some(r) = self.files.incoming_app.get_mut(&key) else {
            return;
        };
        if r.to_file.is_some() {
            return self.save_app_segment(key, segment, data);
        }
        if r.data.len() as u64 + data.len() as u64 > APP_RESOURCE_MAX {
            tracing::warn!(%link, "application resource larger than announced; dropped");
            self.files.incoming_app.remove(&key);
            return;
        }
        r.data.extend_from_slice(&data);
        if !segment.is_last() {
            return;
        }
        let Some(r) = self.files.incoming_app.remove(&key) else {
            return;
        };
        let (metadata, body) = if segment.has_metadata {
            match split_metadata(&r.data) {
                Some((m, body)) => (Some(m), body.to_vec()),
                None => (None, r.data),
            }
        } else {
            (None, r.data)
        };
        let remote_identity = r.remote;
        self.emit(move || NodeEvent::Resource {
            link,
            data: body,
            metadata,
            remote_identity,
        });
    }

    /// Hand a segment of a resource going into the application's directory to the writer;
    /// after the last one, have the file put in place.
    fn save_app_segment(&mut self, key: IncomingKey, segment: &SegmentInfo, data: Vec<u8>) {
        let Some(r) = self.files.incoming_app.get_mut(&key) else {
            return;
        };
        let Some(f) = r.to_file.as_mut() else { return };
        let mut skip = 0;
        if segment.segment_index == 1 {
            if segment.has_metadata {
                if let Some((m, body)) = split_metadata(&data) {
                    skip = data.len() - body.len();
                    f.metadata = Some(m);
                }
            }
            let temp = f
                .dir
                .join(format!(".grid-partial-{}", hex::encode(&key.1[..8])));
            let dir = f.dir.clone();
            self.files.writer.submit(WriteOp::Open { key, dir, temp });
        }
        f.received += data.len() as u64;
        if f.received > f.total {
            tracing::warn!(link = %key.0, "application resource larger than announced; dropped");
            self.files.incoming_app.remove(&key);
            self.files.writer.submit(WriteOp::Abort { key });
            return;
        }
        self.files.writer.submit(WriteOp::Write { key, data, skip });
        if !segment.is_last() {
            return;
        }
        let Some(r) = self.files.incoming_app.remove(&key) else {
            return;
        };
        let Some(f) = r.to_file else { return };
        let name = saved_name(f.metadata.as_ref(), &key.1);
        self.files.saving_app.insert(key, (f.metadata, r.remote));
        self.files.writer.submit(WriteOp::Finish {
            key,
            dir: f.dir,
            name,
            from: r.remote,
        });
    }

    /// The writer put a file in place: a program's resource is announced to it. Whether
    /// it was one.
    pub(super) fn app_resource_saved(
        &mut self,
        key: &IncomingKey,
        path: &std::path::Path,
        bytes: u64,
    ) -> bool {
        let Some((metadata, remote_identity)) = self.files.saving_app.remove(key) else {
            return false;
        };
        let (link, path) = (key.0, path.to_path_buf());
        self.emit(move || NodeEvent::ResourceSaved {
            link,
            path,
            bytes,
            metadata,
            remote_identity,
        });
        true
    }

    /// Drop what is being received for the application on a link (it closed) or in one
    /// failed segment; partial files are removed.
    fn drop_app_incoming(&mut self, keep: impl Fn(&IncomingKey, &AppResource) -> bool) {
        let gone: Vec<IncomingKey> = self
            .files
            .incoming_app
            .iter()
            .filter(|(k, r)| !keep(k, r))
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            if let Some(r) = self.files.incoming_app.remove(&key) {
                if r.to_file.is_some() {
                    self.files.writer.submit(WriteOp::Abort { key });
                }
            }
        }
    }

    /// An application resource's link closed: forget what it was receiving.
    pub(super) fn app_link_closed(&mut self, link: &LinkId) {
        self.drop_app_incoming(|(l, _), _| l != link);
    }

    /// An incoming segment failed: drop the resource it belonged to.
    pub(super) fn on_app_incoming_failed(&mut self, link: LinkId, hash: [u8; 32]) {
        self.drop_app_incoming(|(l, _), r| !(*l == link && r.segment == hash));
    }

    /// A resource we sent was proven.
    pub(super) fn on_app_resource_sent(&mut self, link: LinkId, hash: [u8; 32]) {
        self.answer(
            |w| matches!(w, Wait::ResourceSent { link: l, hash: h } if *l == link && *h == hash),
            |_| Ok(Outcome::ResourceDelivered { link }),
        );
    }

    /// A resource we sent failed.
    pub(super) fn on_app_resource_failed(&mut self, link: LinkId, hash: [u8; 32], why: String) {
        self.answer(
            |w| matches!(w, Wait::ResourceSent { link: l, hash: h } if *l == link && *h == hash),
            |_| Err(crate::Error::Failed(why.clone())),
        );
    }
}
