//! Files arriving over links, compatible with `rncp`: the `rncp.receive` destination
//! receives files from allowed identities into the configured directory (`grid cp` and
//! programs' files and streams go out through `outgoing_files`).
//!
//! A file larger than one resource segment (1 MiB − 1) comes as several segments sharing an
//! original hash. Received segments are appended to a hidden temporary file that is renamed
//! only when the last segment has been verified, so a failed transfer leaves nothing behind;
//! the writing happens on the writer thread (`file_writer`), never on the event loop.
//! Memory is bounded by the writer's backlog ([`super::file_writer::MAX_WRITE_BACKLOG`]).

use std::collections::HashMap;
use std::path::Path;

use rns_core::link::{LinkId, ResourceFailure};
use rns_core::resource::{split_metadata, SegmentInfo};
use rns_core::{rmpv, AddressHash, Instant};

use super::file_writer::{FileWriter, WriteOp, Written};
use super::outgoing_files::OutgoingFile;
use super::Node;
use crate::control::response::ReceivedFile;

/// Received files remembered, for `grid cp --received`.
const FINISHED_KEPT: usize = 64;

/// Segment offers held while the file writer catches up, at most (more are refused).
const DEFERRED_OFFERS: usize = 64;

/// Work done off the event loop for file transfers, reported back to it.
#[derive(Debug)]
pub(crate) enum FileWork {
    /// A segment to send is ready.
    Prepared(Box<Prepared>),
    /// The file writer did something.
    Written(Written),
}

/// A segment read and prepared on a blocking thread, on its way back to the event loop
/// (or why the file could not be read).
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(super) transfer: String,
    pub(super) link: LinkId,
    pub(super) resource: Result<rns_core::resource::OutgoingResource, String>,
}

/// A file arriving over a link.
#[derive(Debug)]
pub(super) struct IncomingFile {
    name: String,
    received: u64,
    total: u64,
    from: Option<AddressHash>,
}

/// The name of a received file whose sender gave none.
pub(super) const UNNAMED: &str = "received-file";

/// A safe file name from received metadata: the last path component, no hidden names.
pub(super) fn safe_name(meta: &rmpv::Value) -> String {
    let raw = match meta {
        rmpv::Value::Map(m) => {
            m.iter()
                .find(|(k, _)| k.as_str() == Some("name"))
                .and_then(|(_, v)| match v {
                    rmpv::Value::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    rmpv::Value::String(s) => s.as_str().map(String::from),
                    _ => None,
                })
        }
        _ => None,
    };
    let base = raw
        .as_deref()
        .and_then(|r| Path::new(r).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = base.trim_start_matches('.').to_string();
    if base.is_empty() {
        UNNAMED.into()
    } else {
        base
    }
}

impl Node {
    /// Whether `identity` may send files here.
    fn may_send_files(&self, identity: Option<&AddressHash>) -> bool {
        self.files.cp.allow_all || identity.is_some_and(|i| self.files.cp.allow.contains(i))
    }

    /// A resource is offered on a link: accept file segments from allowed identities.
    pub(super) fn on_resource_offered(
        &mut self,
        now: Instant,
        link: LinkId,
        segment: &SegmentInfo,
        remote: Option<AddressHash>,
    ) {
        let (hash, segment_index) = (segment.hash, segment.segment_index);
        let to_cp = self
            .transport
            .link(&link)
            .is_some_and(|l| Some(l.destination) == self.files.cp_destination);
        let continuing = segment_index > 1
            && self
                .files
                .incoming_files
                .contains_key(&(link, segment.original_hash));
        let accept =
            to_cp && (continuing || (segment_index == 1 && self.may_send_files(remote.as_ref())));
        if !accept {
            tracing::info!(%link, identity = ?remote.map(|r| r.to_string()), "refused a file: sender not allowed");
        }
        self.answer_segment_offer(now, link, hash, accept, true);
    }

    /// Answer a segment offer. One whose data goes to disk while the writer is behind the
    /// network waits for it to catch up (the sender waits for the answer); past
    /// [`DEFERRED_OFFERS`] such offers it is refused. Whether it was accepted or deferred.
    pub(super) fn answer_segment_offer(
        &mut self,
        now: Instant,
        link: LinkId,
        hash: [u8; 32],
        mut accept: bool,
        to_disk: bool,
    ) -> bool {
        if accept && to_disk && self.files.writer.behind() {
            if self.files.deferred_offers.len() < DEFERRED_OFFERS {
                self.files.deferred_offers.push((link, hash));
                return true;
            }
            tracing::warn!(%link, "refused a resource segment: the file writer is behind");
            accept = false;
        }
        let _ = self
            .transport
            .link_answer_resource(now, &link, &hash, accept);
        accept
    }

    /// Work done off the loop for file transfers is back.
    pub(super) fn on_file_work(&mut self, now: Instant, work: FileWork) {
        match work {
            FileWork::Prepared(p) => self.on_prepared(now, *p),
            FileWork::Written(Written::Drained { bytes }) => {
                self.files.writer.drained(bytes);
                if !self.files.writer.behind() {
                    for (link, hash) in std::mem::take(&mut self.files.deferred_offers) {
                        let _ = self.transport.link_answer_resource(now, &link, &hash, true);
                    }
                }
            }
            FileWork::Written(Written::Failed { key, error }) => {
                tracing::warn!(%error, "cannot write a received file");
                self.files.incoming_app.remove(&key);
                self.files.saving_app.remove(&key);
                if let Some(f) = self.files.incoming_files.remove(&key) {
                    tracing::info!(name = %f.name, "a file transfer failed; the partial file was removed");
                }
            }
            FileWork::Written(Written::Finished {
                key,
                path,
                bytes,
                from,
            }) => {
                if self.app_resource_saved(&key, &path, bytes) {
                    return;
                }
                tracing::info!(path = %path.display(), bytes, from = ?from.map(|x| x.to_string()), "received a file");
                self.files.received_files.push_back(ReceivedFile {
                    path: path.display().to_string(),
                    bytes,
                    from,
                });
                if self.files.received_files.len() > FINISHED_KEPT {
                    self.files.received_files.pop_front();
                }
            }
        }
    }

    /// A verified segment arrived: write it out; rename the file when it is complete.
    pub(super) fn on_resource_segment(
        &mut self,
        link: LinkId,
        segment: &SegmentInfo,
        data: Vec<u8>,
    ) {
        let original_hash = segment.original_hash;
        let key = (link, original_hash);
        if segment.segment_index == 1 {
            let (name, skip) = if segment.has_metadata {
                match split_metadata(&data) {
                    Some((meta, body)) => (safe_name(&meta), data.len() - body.len()),
                    None => ("received-file".to_string(), 0),
                }
            } else {
                ("received-file".to_string(), 0)
            };
            let dir = self.files.cp_directory.clone();
            let temp = dir.join(format!(
                ".grid-partial-{}",
                hex::encode(&original_hash[..8])
            ));
            let from = self.transport.link(&link).and_then(|l| l.remote_identity);
            self.files.writer.submit(WriteOp::Open { key, dir, temp });
            self.files.incoming_files.insert(
                key,
                IncomingFile {
                    name,
                    received: 0,
                    total: segment.total_size,
                    from,
                },
            );
            self.write_segment(&key, data, skip);
        } else {
            self.write_segment(&key, data, 0);
        }
        if segment.is_last() {
            if let Some(f) = self.files.incoming_files.remove(&key) {
                self.files.writer.submit(WriteOp::Finish {
                    key,
                    dir: self.files.cp_directory.clone(),
                    name: f.name,
                    from: f.from,
                });
            }
        }
    }

    fn write_segment(&mut self, key: &IncomingKey, data: Vec<u8>, skip: usize) {
        let failed = match self.files.incoming_files.get_mut(key) {
            Some(f) => {
                f.received += data.len().saturating_sub(skip) as u64;
                f.received > f.total
            }
            None => return,
        };
        if failed {
            self.drop_incoming_file(key);
        } else {
            self.files.writer.submit(WriteOp::Write {
                key: *key,
                data,
                skip,
            });
        }
    }

    /// Remove a partial file (the transfer failed or the link closed).
    pub(super) fn drop_incoming_file(&mut self, key: &(LinkId, [u8; 32])) {
        if let Some(f) = self.files.incoming_files.remove(key) {
            self.files.writer.submit(WriteOp::Abort { key: *key });
            tracing::info!(name = %f.name, "a file transfer failed; the partial file was removed");
        }
    }

    /// A link closed: drop its partial files and fail its outgoing transfers.
    pub(super) fn files_link_closed(&mut self, now: Instant, link: &LinkId) {
        let keys: Vec<_> = self
            .files
            .incoming_files
            .keys()
            .filter(|(l, _)| l == link)
            .copied()
            .collect();
        for k in keys {
            self.drop_incoming_file(&k);
        }
        self.outgoing_link_closed(now, link);
    }

    /// An incoming transfer failed.
    pub(super) fn on_incoming_resource_failed(&mut self, link: LinkId, _reason: ResourceFailure) {
        let keys: Vec<_> = self
            .files
            .incoming_files
            .keys()
            .filter(|(l, _)| *l == link)
            .copied()
            .collect();
        for k in keys {
            self.drop_incoming_file(&k);
        }
    }
}

/// Key of an incoming file: the link and the transfer's original hash.
pub(super) type IncomingKey = (LinkId, [u8; 32]);

/// Files arriving, by key.
pub(super) type IncomingFiles = HashMap<IncomingKey, IncomingFile>;

/// File transfers: `grid cp` / `rncp` both ways, and resources offered to programs.
pub(super) struct Transfers {
    /// Whether and where resources on application links are accepted.
    pub(super) app_policy: super::app_resources::AppResourcePolicy,
    /// Resources arriving for the application, until whole.
    pub(super) incoming_app: super::app_resources::AppResources,
    /// The application's resources written to files, until the writer has them in place.
    pub(super) saving_app: super::app_resources::SavingApp,
    /// Who may send files, and the resolved receive directory.
    pub(super) cp: crate::config::CpConfig,
    pub(super) cp_directory: std::path::PathBuf,
    /// `rncp.receive`: where files are sent to this node.
    pub(super) cp_destination: Option<AddressHash>,
    /// Files arriving.
    pub(super) incoming_files: IncomingFiles,
    /// Files being sent.
    pub(super) outgoing_files: Vec<OutgoingFile>,
    /// Files received lately, for `grid cp --received`.
    pub(super) received_files: std::collections::VecDeque<ReceivedFile>,
    /// Where blocking-thread work (segment preparation, file writes) reports back.
    pub(super) prepared_tx: tokio::sync::mpsc::UnboundedSender<FileWork>,
    /// The thread that writes received files.
    pub(super) writer: FileWriter,
    /// Segment offers answered once the writer has caught up.
    pub(super) deferred_offers: Vec<(LinkId, [u8; 32])>,
}
