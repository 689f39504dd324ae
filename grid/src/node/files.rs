//! Files over links, compatible with `rncp`: the `rncp.receive` destination receives
//! files from allowed identities into the configured directory; `grid cp` sends files.
//!
//! A file larger than one resource segment (1 MiB − 1) goes as several segments sharing an
//! original hash. Received segments are appended to a hidden temporary file that is renamed
//! only when the last segment has been verified, so a failed transfer leaves nothing behind;
//! the writing happens on the writer thread (`file_writer`), never on the event loop.
//! Memory is bounded by one segment on the sending side and by the writer's backlog
//! ([`super::file_writer::MAX_WRITE_BACKLOG`]) on the receiving side.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rns_core::link::{LinkId, ResourceFailure};
use rns_core::resource::{
    split_metadata, with_metadata, SegmentBuffer, SegmentInfo, SegmentSpec, MAX_EFFICIENT_SIZE,
};
use rns_core::{rmpv, AddressHash, Instant};

use super::file_writer::{FileWriter, WriteOp, Written};
use super::Node;
use crate::control::response::{CpState, CpStatus, ReceivedFile};
use crate::Error;

/// Transfers remembered after they finish, for `grid cp` to read the outcome.
const FINISHED_KEPT: usize = 64;

/// Segments handed to a link (queued or in flight) per transfer, at most: one on the wire
/// and the next ready to be advertised.
const SEGMENTS_AHEAD: usize = 2;

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
    transfer: String,
    link: LinkId,
    resource: Result<rns_core::resource::OutgoingResource, String>,
}

/// A file arriving over a link.
#[derive(Debug)]
pub(super) struct IncomingFile {
    name: String,
    received: u64,
    total: u64,
    from: Option<AddressHash>,
}

/// A file being sent over a link.
#[derive(Debug)]
pub(super) struct OutgoingFile {
    pub(super) id: String,
    pub(super) link: Option<LinkId>,
    pub(super) destination: AddressHash,
    path: PathBuf,
    /// Read at offsets (`pread`) on blocking threads, so shared.
    file: Option<std::sync::Arc<File>>,
    /// The metadata prefix sent with the first segment.
    metadata: Vec<u8>,
    file_size: u64,
    total_segments: u64,
    next_segment: u64,
    original_hash: Option<[u8; 32]>,
    /// Bytes of data (with metadata) confirmed by the receiver.
    pub(super) done: u64,
    /// Sizes of the segments handed to the link (or being prepared) and not yet proven,
    /// oldest first, and the oldest one's progress.
    segment_sizes: std::collections::VecDeque<u64>,
    front_progress: f64,
    /// A segment is being prepared on a blocking thread.
    preparing: bool,
    pub(super) state: TransferState,
    started: Instant,
    /// When the link came up and sending began.
    sending_since: Option<Instant>,
    last_path_request: Instant,
    finished: Option<Instant>,
}

/// Where a file transfer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TransferState {
    /// Waiting for a path and a link.
    Connecting,
    /// Sending.
    Sending,
    /// All segments proven.
    Complete,
    /// Failed, and why.
    Failed(Error),
}

/// The `rncp` metadata map: `{"name": <bytes>}`.
fn metadata_for(path: &Path) -> rmpv::Value {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    rmpv::Value::Map(vec![(
        rmpv::Value::from("name"),
        rmpv::Value::Binary(name.into_bytes()),
    )])
}

/// A safe file name from received metadata: the last path component, no hidden names.
fn safe_name(meta: &rmpv::Value) -> String {
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
        "received-file".into()
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
        } else if self.files.writer.behind() {
            // The disk is behind the network: the sender waits for our answer until the
            // writer catches up (past a bound, the offer is refused).
            if self.files.deferred_offers.len() < DEFERRED_OFFERS {
                self.files.deferred_offers.push((link, hash));
                return;
            }
            tracing::warn!(%link, "refused a file segment: the file writer is behind");
            let _ = self
                .transport
                .link_answer_resource(now, &link, &hash, false);
            return;
        }
        let _ = self
            .transport
            .link_answer_resource(now, &link, &hash, accept);
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
                if let Some(f) = self.files.incoming_files.remove(&key) {
                    tracing::info!(name = %f.name, "a file transfer failed; the partial file was removed");
                }
            }
            FileWork::Written(Written::Finished { path, bytes, from }) => {
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
        for t in self
            .files
            .outgoing_files
            .iter_mut()
            .filter(|t| t.link == Some(*link))
        {
            if matches!(t.state, TransferState::Sending | TransferState::Connecting) {
                t.state = TransferState::Failed(Error::LinkClosed("the link closed".into()));
                t.finished = Some(now);
            }
        }
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

    /// Start sending a file to an `rncp.receive` destination; returns the transfer id.
    pub(super) fn start_send_file(
        &mut self,
        now: Instant,
        path: &Path,
        destination: AddressHash,
    ) -> Result<String, Error> {
        let unreadable = |e: std::io::Error| Error::Failed(format!("{}: {e}", path.display()));
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if !meta.is_file() {
            let e = format!("{}: not a regular file", path.display());
            return Err(Error::BadRequest(e));
        }
        let file = File::open(path).map_err(unreadable)?;
        let metadata = with_metadata(&metadata_for(path), &[])
            .ok_or_else(|| Error::BadRequest("file name too long".into()))?;
        let total = meta.len() + metadata.len() as u64;
        let total_segments = total.div_ceil(MAX_EFFICIENT_SIZE as u64).max(1);
        let id = hex::encode(
            &rns_core::hash::full_hash(format!("{}{}", path.display(), now.as_millis()).as_bytes())
                [..8],
        );
        self.files.outgoing_files.push(OutgoingFile {
            id: id.clone(),
            link: None,
            destination,
            path: path.to_path_buf(),
            file: Some(std::sync::Arc::new(file)),
            metadata,
            file_size: meta.len(),
            total_segments,
            next_segment: 1,
            original_hash: None,
            done: 0,
            segment_sizes: std::collections::VecDeque::new(),
            front_progress: 0.0,
            preparing: false,
            state: TransferState::Connecting,
            started: now,
            sending_since: None,
            last_path_request: now,
            finished: None,
        });
        if self.transport.path(&destination).is_none() {
            self.transport.request_path(now, &destination, None);
        }
        self.drive_outgoing_files(now);
        Ok(id)
    }

    /// Open links and send next segments for transfers that can make progress.
    pub(super) fn drive_outgoing_files(&mut self, now: Instant) {
        for i in 0..self.files.outgoing_files.len() {
            if self.files.outgoing_files[i].state != TransferState::Connecting
                || self.files.outgoing_files[i].link.is_some()
            {
                continue;
            }
            let d = self.files.outgoing_files[i].destination;
            if self.transport.path(&d).is_none() {
                if now.saturating_since(self.files.outgoing_files[i].started)
                    > Duration::from_secs(30)
                {
                    let e = Error::NoPath {
                        destination: d,
                        message: format!("no path to {d}"),
                    };
                    self.fail_outgoing_file(i, now, e);
                } else if now.saturating_since(self.files.outgoing_files[i].last_path_request)
                    >= Duration::from_secs(5)
                {
                    // Path requests are best effort; ask again while waiting.
                    self.files.outgoing_files[i].last_path_request = now;
                    self.transport.request_path(now, &d, None);
                }
                continue;
            }
            match self.transport.open_link(now, &d) {
                Ok(l) => self.files.outgoing_files[i].link = Some(l),
                Err(e) => self.fail_outgoing_file(i, now, e.into()),
            }
        }
        self.files.outgoing_files.retain(|t| {
            t.finished
                .is_none_or(|f| now.saturating_since(f) < Duration::from_secs(600))
        });
        while self.files.outgoing_files.len() > FINISHED_KEPT {
            if let Some(i) = self
                .files
                .outgoing_files
                .iter()
                .position(|t| t.finished.is_some())
            {
                self.files.outgoing_files.remove(i);
            } else {
                break;
            }
        }
    }

    fn fail_outgoing_file(&mut self, i: usize, now: Instant, why: Error) {
        let t = &mut self.files.outgoing_files[i];
        t.state = TransferState::Failed(why);
        t.finished = Some(now);
        t.file = None;
    }

    /// A link came up: identify and start transfers waiting for it.
    pub(super) fn files_link_established(&mut self, now: Instant, link: LinkId) {
        let Some(i) = self
            .files
            .outgoing_files
            .iter()
            .position(|t| t.link == Some(link) && t.state == TransferState::Connecting)
        else {
            return;
        };
        let identity = self.identity.clone();
        let _ = self.transport.link_identify(now, &link, &identity);
        self.files.outgoing_files[i].state = TransferState::Sending;
        self.files.outgoing_files[i].sending_since = Some(now);
        self.send_next_segment(now, i);
    }

    fn send_next_segment(&mut self, now: Instant, i: usize) {
        let t = &mut self.files.outgoing_files[i];
        let (Some(link), Some(file)) = (t.link, t.file.clone()) else {
            return;
        };
        let first = t.next_segment == 1;
        let metadata = if first {
            t.metadata.clone()
        } else {
            Vec::new()
        };
        let offset = if first {
            0
        } else {
            (MAX_EFFICIENT_SIZE - t.metadata.len()) as u64
                + (t.next_segment - 2) * MAX_EFFICIENT_SIZE as u64
        };
        // This segment's share of the file: what fits beside the metadata, or what is left.
        let len = ((MAX_EFFICIENT_SIZE - metadata.len()) as u64)
            .min(t.file_size.saturating_sub(offset)) as usize;
        let spec = SegmentSpec {
            original_hash: t.original_hash,
            segment_index: t.next_segment,
            total_segments: t.total_segments,
            total_size: t.file_size + t.metadata.len() as u64,
            has_metadata: true,
            request_id: None,
            is_response: false,
            compress: true,
        };
        t.segment_sizes.push_back((metadata.len() + len) as u64);
        t.preparing = true;
        t.next_segment += 1;
        let preparer = match self.transport.link_resource_preparer(&link) {
            Ok(p) => p,
            Err(e) => return self.fail_outgoing_file(i, now, e.into()),
        };
        // Reading (straight into the buffer the segment is encrypted and sent from), then
        // compression, encryption and hashing of up to 1 MiB: all off the event loop.
        let t = &self.files.outgoing_files[i];
        let (id, path) = (t.id.clone(), t.path.clone());
        let tx = self.files.prepared_tx.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = SegmentBuffer::with_capacity(metadata.len() + len);
            buf.extend_from_slice(&metadata);
            let resource = buf
                .append_with(len, |b| file.read_exact_at(b, offset).map(|()| b.len()))
                .map(|_| preparer.prepare_buffer(&mut rand_core::OsRng, now, buf, &spec))
                .map_err(|e| format!("{}: {e}", path.display()));
            let _ = tx.send(FileWork::Prepared(Box::new(Prepared {
                transfer: id,
                link,
                resource,
            })));
        });
    }

    /// A segment prepared off the event loop is ready: queue it on its link.
    fn on_prepared(&mut self, now: Instant, p: Prepared) {
        let Some(i) = self.files.outgoing_files.iter().position(|t| {
            t.id == p.transfer && t.link == Some(p.link) && t.state == TransferState::Sending
        }) else {
            return;
        };
        self.files.outgoing_files[i].preparing = false;
        let resource = match p.resource {
            Ok(r) => r,
            Err(e) => {
                self.fail_outgoing_file(i, now, Error::Failed(e));
                let _ = self.transport.close_link(now, &p.link);
                return;
            }
        };
        match self.transport.link_enqueue_resource(now, &p.link, resource) {
            Ok(hash) => {
                let t = &mut self.files.outgoing_files[i];
                if t.original_hash.is_none() {
                    t.original_hash = Some(hash);
                }
                // Prepare the next segment while this one is on the wire, so the link can
                // advertise it the moment this one is proven.
                self.prepare_ahead(now, i);
            }
            Err(e) => self.fail_outgoing_file(i, now, e.into()),
        }
    }

    /// Start preparing the next segment if there is one and at most one is queued.
    fn prepare_ahead(&mut self, now: Instant, i: usize) {
        let t = &self.files.outgoing_files[i];
        if !t.preparing
            && t.next_segment <= t.total_segments
            && t.segment_sizes.len() < SEGMENTS_AHEAD
        {
            self.send_next_segment(now, i);
        }
    }

    /// A segment we sent was proven.
    pub(super) fn on_resource_sent(&mut self, now: Instant, link: LinkId, segment: &SegmentInfo) {
        let Some(i) = self
            .files
            .outgoing_files
            .iter()
            .position(|t| t.link == Some(link) && t.state == TransferState::Sending)
        else {
            return;
        };
        let t = &mut self.files.outgoing_files[i];
        t.done += t.segment_sizes.pop_front().unwrap_or(0);
        t.front_progress = 0.0;
        if segment.is_last() {
            t.state = TransferState::Complete;
            t.finished = Some(now);
            t.file = None;
            let _ = self.transport.close_link(now, &link);
        } else {
            self.prepare_ahead(now, i);
        }
    }

    /// Progress of a segment we are sending.
    pub(super) fn on_resource_progress(&mut self, link: LinkId, done: usize, total: usize) {
        if let Some(t) = self
            .files
            .outgoing_files
            .iter_mut()
            .find(|t| t.link == Some(link) && t.state == TransferState::Sending)
        {
            t.front_progress = if total == 0 {
                0.0
            } else {
                done as f64 / total as f64
            };
        }
    }

    /// An outgoing segment failed.
    pub(super) fn on_outgoing_resource_failed(
        &mut self,
        now: Instant,
        link: LinkId,
        reason: ResourceFailure,
    ) {
        if let Some(i) = self
            .files
            .outgoing_files
            .iter()
            .position(|t| t.link == Some(link) && t.state == TransferState::Sending)
        {
            let why = match reason {
                ResourceFailure::Rejected => Error::Denied(
                    "the receiver refused the file (is this identity allowed?)".into(),
                ),
                other => Error::Failed(format!("the transfer failed ({other:?})")),
            };
            self.fail_outgoing_file(i, now, why);
            let _ = self.transport.close_link(now, &link);
        }
    }

    /// A transfer's status for `grid cp`; [`Error::BadRequest`] for an unknown id.
    pub(super) fn transfer_status(&self, id: &str, now: Instant) -> Result<CpStatus, Error> {
        let Some(t) = self.files.outgoing_files.iter().find(|t| t.id == id) else {
            return Err(Error::BadRequest(format!("no transfer {id}")));
        };
        let total = t.file_size + t.metadata.len() as u64;
        let front = t.segment_sizes.front().copied().unwrap_or(0) as f64;
        let done = (t.done as f64 + front * t.front_progress).min(total as f64);
        let elapsed = t
            .finished
            .unwrap_or(now)
            .saturating_since(t.started)
            .as_secs_f64();
        let (state, error) = match &t.state {
            TransferState::Connecting => (CpState::Connecting, None),
            TransferState::Sending => (CpState::Sending, None),
            TransferState::Complete => (CpState::Complete, None),
            TransferState::Failed(e) => (CpState::Failed, Some(e.to_string())),
        };
        let end = t.finished.unwrap_or(now);
        Ok(CpStatus {
            id: t.id.clone(),
            state,
            error,
            file: t.path.display().to_string(),
            bytes: t.file_size,
            done: done as u64,
            total,
            seconds: elapsed,
            transfer_seconds: t
                .sending_since
                .map(|s| end.saturating_since(s).as_secs_f64()),
            rate_bytes_per_s: if elapsed > 0.0 { done / elapsed } else { 0.0 },
        })
    }
}

/// Key of an incoming file: the link and the transfer's original hash.
pub(super) type IncomingKey = (LinkId, [u8; 32]);

/// Files arriving, by key.
pub(super) type IncomingFiles = HashMap<IncomingKey, IncomingFile>;

/// File transfers: `grid cp` / `rncp` both ways, and resources offered to programs.
pub(super) struct Transfers {
    /// Resources on links to `grid.node` are accepted for the application.
    pub(super) app_resources: bool,
    /// Resources arriving for the application, until whole.
    pub(super) incoming_app: super::embedded_api::AppResources,
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
