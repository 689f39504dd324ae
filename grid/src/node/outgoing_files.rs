//! Resources of any size going out, one segment (1 MiB − 1) at a time: `grid cp` files to
//! an `rncp.receive` destination on a link of their own, and a program's files or byte
//! streams on its links (`NodeHandle::send_file`, `NodeHandle::send_reader`).
//!
//! Each segment is read, compressed (if asked and worth it), encrypted and hashed on a
//! blocking thread, straight into the buffer its parts are sent from; the next one is
//! prepared while the current one is on the wire. Memory is bounded by
//! [`SEGMENTS_AHEAD`] segments per transfer and [`MAX_ACTIVE`] transfers per node.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rns_core::link::{LinkId, LinkState, ResourceFailure};
use rns_core::resource::{
    with_metadata, SegmentBuffer, SegmentInfo, SegmentSpec, MAX_EFFICIENT_SIZE,
};
use rns_core::{rmpv, AddressHash, Instant};
use tokio::sync::oneshot;

use super::files::{FileWork, Prepared};
use super::Node;
use crate::control::response::{CpState, CpStatus};
use crate::Error;

/// Transfers remembered after they finish, for `grid cp` to read the outcome.
const FINISHED_KEPT: usize = 64;

/// Segments handed to a link (queued or in flight) per transfer, at most: one on the wire
/// and the next ready to be advertised.
const SEGMENTS_AHEAD: usize = 2;

/// Transfers sending at once per node, at most (more are refused as busy).
pub(super) const MAX_ACTIVE: usize = 64;

/// Where a resource's bytes come from.
pub(crate) enum Source {
    /// A file, read at offsets (`pread`) on blocking threads, so shared.
    File(Arc<File>),
    /// A byte stream of a stated length, read in order (one segment is prepared at a
    /// time, so the lock is never contended).
    Reader(Arc<Mutex<Box<dyn Read + Send>>>),
}

impl Source {
    /// A stream of bytes read in order.
    pub(crate) fn reader(reader: impl Read + Send + 'static) -> Source {
        Source::Reader(Arc::new(Mutex::new(Box::new(reader))))
    }

    /// Fill `buf` with the bytes at `offset` (a stream ignores it: segments are read in
    /// order).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Source::File(f) => std::os::unix::fs::FileExt::read_exact_at(&**f, buf, offset),
            Source::Reader(r) => r
                .lock()
                .map_err(|_| std::io::Error::other("the stream's reader panicked"))?
                .read_exact(buf),
        }
    }

    fn clone_shared(&self) -> Source {
        match self {
            Source::File(f) => Source::File(f.clone()),
            Source::Reader(r) => Source::Reader(r.clone()),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::File(_) => "Source::File",
            Source::Reader(_) => "Source::Reader",
        })
    }
}

/// Who started a transfer, which decides what happens around it.
#[derive(Debug)]
pub(super) enum Purpose {
    /// `grid cp`: a link of its own to an `rncp.receive` destination, identified first
    /// and closed at the end.
    Cp,
    /// A program's resource on a link it holds, which stays open; `done` hears the outcome.
    App {
        done: Option<oneshot::Sender<Result<(), Error>>>,
    },
}

/// A resource being sent over a link, segment by segment.
#[derive(Debug)]
pub(super) struct OutgoingFile {
    pub(super) id: String,
    pub(super) link: Option<LinkId>,
    pub(super) destination: AddressHash,
    /// The file's path, or what the program called its stream (for status and errors).
    name: String,
    source: Option<Source>,
    /// The metadata prefix sent with the first segment (empty without metadata).
    metadata: Vec<u8>,
    has_metadata: bool,
    compress: bool,
    file_size: u64,
    total_segments: u64,
    next_segment: u64,
    original_hash: Option<[u8; 32]>,
    /// Bytes of data (with metadata) confirmed by the receiver.
    pub(super) done: u64,
    /// Sizes of the segments handed to the link (or being prepared) and not yet proven,
    /// oldest first, and the oldest one's progress.
    segment_sizes: VecDeque<u64>,
    /// Hashes of the segments queued on the link and not yet proven, oldest first.
    queued: VecDeque<[u8; 32]>,
    front_progress: f64,
    /// A segment is being prepared on a blocking thread.
    preparing: bool,
    pub(super) state: TransferState,
    started: Instant,
    /// When the link came up and sending began.
    sending_since: Option<Instant>,
    last_path_request: Instant,
    finished: Option<Instant>,
    purpose: Purpose,
}

impl OutgoingFile {
    fn active(&self) -> bool {
        matches!(
            self.state,
            TransferState::Connecting | TransferState::Sending
        )
    }

    /// End the transfer: remember why, let go of the source, tell a waiting program.
    fn finish(&mut self, now: Instant, outcome: Result<(), Error>) {
        self.state = match &outcome {
            Ok(()) => TransferState::Complete,
            Err(e) => TransferState::Failed(e.clone()),
        };
        self.finished = Some(now);
        self.source = None;
        if let Purpose::App { done } = &mut self.purpose {
            if let Some(tx) = done.take() {
                let _ = tx.send(outcome);
            }
        }
    }
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

/// A program's resource to send from a file or a stream.
#[derive(Debug)]
pub(crate) struct AppTransfer {
    /// The link it goes on.
    pub(crate) link: LinkId,
    pub(crate) source: Source,
    /// Its length in bytes (a stream must deliver exactly this many).
    pub(crate) len: u64,
    /// The file's path or the stream's name, for status and errors.
    pub(crate) name: String,
    pub(crate) metadata: Option<rmpv::Value>,
    pub(crate) compress: bool,
    /// Hears the outcome.
    pub(crate) done: oneshot::Sender<Result<(), Error>>,
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

/// A transfer id: 16 hex digits from what is sent and when.
fn transfer_id(name: &str, now: Instant, n: usize) -> String {
    let seed = format!("{name}{}{n}", now.as_millis());
    hex::encode(&rns_core::hash::full_hash(seed.as_bytes())[..8])
}

impl Node {
    fn active_transfers(&self) -> usize {
        self.files
            .outgoing_files
            .iter()
            .filter(|t| t.active())
            .count()
    }

    #[allow(clippy::too_many_arguments)]
    fn new_transfer(
        &self,
        now: Instant,
        link: Option<LinkId>,
        destination: AddressHash,
        name: String,
        source: Source,
        len: u64,
        metadata: Option<&rmpv::Value>,
        compress: bool,
        purpose: Purpose,
    ) -> Result<OutgoingFile, Error> {
        if self.active_transfers() >= MAX_ACTIVE {
            return Err(Error::Busy(format!(
                "{MAX_ACTIVE} transfers are sending already; wait for one to finish"
            )));
        }
        let packed = match metadata {
            Some(m) => with_metadata(m, &[])
                .ok_or_else(|| Error::BadRequest("the metadata is too large".into()))?,
            None => Vec::new(),
        };
        let total = len + packed.len() as u64;
        let sending = link.is_some();
        Ok(OutgoingFile {
            id: transfer_id(&name, now, self.files.outgoing_files.len()),
            link,
            destination,
            name,
            source: Some(source),
            has_metadata: metadata.is_some(),
            metadata: packed,
            compress,
            file_size: len,
            total_segments: total.div_ceil(MAX_EFFICIENT_SIZE as u64).max(1),
            next_segment: 1,
            original_hash: None,
            done: 0,
            segment_sizes: VecDeque::new(),
            queued: VecDeque::new(),
            front_progress: 0.0,
            preparing: false,
            state: if sending {
                TransferState::Sending
            } else {
                TransferState::Connecting
            },
            started: now,
            sending_since: sending.then_some(now),
            last_path_request: now,
            finished: None,
            purpose,
        })
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
        let t = self.new_transfer(
            now,
            None,
            destination,
            path.display().to_string(),
            Source::File(Arc::new(file)),
            meta.len(),
            Some(&metadata_for(path)),
            true,
            Purpose::Cp,
        )?;
        let id = t.id.clone();
        self.files.outgoing_files.push(t);
        if self.transport.path(&destination).is_none() {
            self.transport.request_path(now, &destination, None);
        }
        self.drive_outgoing_files(now);
        Ok(id)
    }

    /// Start sending a program's file or stream on its link; the outcome goes to its
    /// `done`. Returns the transfer id.
    pub(super) fn start_app_transfer(
        &mut self,
        now: Instant,
        req: AppTransfer,
    ) -> Result<String, Error> {
        let AppTransfer {
            link,
            source,
            len,
            name,
            metadata,
            compress,
            done,
        } = req;
        let destination = match self.transport.link(&link) {
            Some(l) if l.state == LinkState::Active => l.destination,
            _ => return Err(Error::LinkClosed(format!("link {link} is not open"))),
        };
        let purpose = Purpose::App { done: Some(done) };
        let t = self.new_transfer(
            now,
            Some(link),
            destination,
            name,
            source,
            len,
            metadata.as_ref(),
            compress,
            purpose,
        )?;
        let id = t.id.clone();
        self.files.outgoing_files.push(t);
        let i = self.files.outgoing_files.len() - 1;
        self.send_next_segment(now, i);
        Ok(id)
    }

    /// Cancel a transfer this node is sending (RNS: `resource.cancel()`): the segment on
    /// the wire is cancelled with the receiver, queued ones are dropped. Whether it was
    /// still going.
    pub(super) fn cancel_transfer(&mut self, now: Instant, id: &str) -> bool {
        let Some(i) = self
            .files
            .outgoing_files
            .iter()
            .position(|t| t.id == id && t.active())
        else {
            return false;
        };
        self.files.outgoing_files[i].finish(now, Err(Error::Cancelled));
        self.cancel_queued(now, i);
        true
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
                    self.files.outgoing_files[i].finish(now, Err(e));
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
                Err(e) => self.files.outgoing_files[i].finish(now, Err(e.into())),
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

    /// A link came up: identify and start `grid cp` transfers waiting for it.
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

    /// A link closed: fail the transfers on it.
    pub(super) fn outgoing_link_closed(&mut self, now: Instant, link: &LinkId) {
        for t in self
            .files
            .outgoing_files
            .iter_mut()
            .filter(|t| t.link == Some(*link) && t.active())
        {
            t.finish(now, Err(Error::LinkClosed("the link closed".into())));
        }
    }

    fn send_next_segment(&mut self, now: Instant, i: usize) {
        let t = &mut self.files.outgoing_files[i];
        let (Some(link), Some(source)) = (t.link, t.source.as_ref().map(Source::clone_shared))
        else {
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
        // This segment's share of the data: what fits beside the metadata, or what is left.
        let len = ((MAX_EFFICIENT_SIZE - metadata.len()) as u64)
            .min(t.file_size.saturating_sub(offset)) as usize;
        let spec = SegmentSpec {
            original_hash: t.original_hash,
            segment_index: t.next_segment,
            total_segments: t.total_segments,
            total_size: t.file_size + t.metadata.len() as u64,
            has_metadata: t.has_metadata,
            request_id: None,
            is_response: false,
            compress: t.compress,
        };
        t.segment_sizes.push_back((metadata.len() + len) as u64);
        t.preparing = true;
        t.next_segment += 1;
        let preparer = match self.transport.link_resource_preparer(&link) {
            Ok(p) => p,
            Err(e) => return self.files.outgoing_files[i].finish(now, Err(e.into())),
        };
        // Reading (straight into the buffer the segment is encrypted and sent from), then
        // compression, encryption and hashing of up to 1 MiB: all off the event loop.
        let t = &self.files.outgoing_files[i];
        let (id, name) = (t.id.clone(), t.name.clone());
        let tx = self.files.prepared_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut buf = SegmentBuffer::with_capacity(metadata.len() + len);
            buf.extend_from_slice(&metadata);
            let resource = buf
                .append_with(len, |b| source.read_at(b, offset).map(|()| b.len()))
                .map(|_| preparer.prepare_buffer(&mut rand_core::OsRng, now, buf, &spec))
                .map_err(|e| format!("{name}: {e}"));
            let _ = tx.send(FileWork::Prepared(Box::new(Prepared {
                transfer: id,
                link,
                resource,
            })));
        });
    }

    /// A segment prepared off the event loop is ready: queue it on its link.
    pub(super) fn on_prepared(&mut self, now: Instant, p: Prepared) {
        let Some(i) = self.files.outgoing_files.iter().position(|t| {
            t.id == p.transfer && t.link == Some(p.link) && t.state == TransferState::Sending
        }) else {
            return;
        };
        self.files.outgoing_files[i].preparing = false;
        let resource = match p.resource {
            Ok(r) => r,
            Err(e) => {
                self.files.outgoing_files[i].finish(now, Err(Error::Failed(e)));
                self.cancel_queued(now, i);
                return;
            }
        };
        match self.transport.link_enqueue_resource(now, &p.link, resource) {
            Ok(hash) => {
                let t = &mut self.files.outgoing_files[i];
                t.queued.push_back(hash);
                if t.original_hash.is_none() {
                    t.original_hash = Some(hash);
                }
                // Prepare the next segment while this one is on the wire, so the link can
                // advertise it the moment this one is proven.
                self.prepare_ahead(now, i);
            }
            Err(e) => self.files.outgoing_files[i].finish(now, Err(e.into())),
        }
    }

    /// A transfer ended early: cancel what it queued, newest first so the segment on the
    /// wire goes last and nothing queued slips out (and close a `grid cp` link).
    fn cancel_queued(&mut self, now: Instant, i: usize) {
        let t = &mut self.files.outgoing_files[i];
        let (link, queued) = (t.link, std::mem::take(&mut t.queued));
        let Some(link) = link else { return };
        for hash in queued.iter().rev() {
            let _ = self.transport.link_cancel_resource(now, &link, hash);
        }
        if matches!(self.files.outgoing_files[i].purpose, Purpose::Cp) {
            let _ = self.transport.close_link(now, &link);
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

    /// The sending transfer a segment on `link` belongs to.
    fn transfer_of(&self, link: LinkId, hash: &[u8; 32]) -> Option<usize> {
        self.files.outgoing_files.iter().position(|t| {
            t.link == Some(link) && t.state == TransferState::Sending && t.queued.contains(hash)
        })
    }

    /// A segment we sent was proven.
    pub(super) fn on_resource_sent(&mut self, now: Instant, link: LinkId, segment: &SegmentInfo) {
        let Some(i) = self.transfer_of(link, &segment.hash) else {
            return;
        };
        let t = &mut self.files.outgoing_files[i];
        t.queued.retain(|h| *h != segment.hash);
        t.done += t.segment_sizes.pop_front().unwrap_or(0);
        t.front_progress = 0.0;
        if segment.is_last() {
            t.finish(now, Ok(()));
            if matches!(t.purpose, Purpose::Cp) {
                let _ = self.transport.close_link(now, &link);
            }
        } else {
            self.prepare_ahead(now, i);
        }
    }

    /// Progress of a segment we are sending.
    pub(super) fn on_resource_progress(
        &mut self,
        link: LinkId,
        hash: &[u8; 32],
        done: usize,
        total: usize,
    ) {
        if let Some(i) = self.transfer_of(link, hash) {
            self.files.outgoing_files[i].front_progress = if total == 0 {
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
        hash: &[u8; 32],
        reason: ResourceFailure,
    ) {
        let Some(i) = self.transfer_of(link, hash) else {
            return;
        };
        let why = match (reason, &self.files.outgoing_files[i].purpose) {
            (ResourceFailure::Rejected, Purpose::Cp) => {
                Error::Denied("the receiver refused the file (is this identity allowed?)".into())
            }
            (ResourceFailure::Rejected, Purpose::App { .. }) => {
                Error::Denied("the receiver refused the resource".into())
            }
            (ResourceFailure::Cancelled, _) => Error::Cancelled,
            (other, _) => Error::Failed(format!("the transfer failed ({other:?})")),
        };
        self.files.outgoing_files[i].queued.retain(|h| h != hash);
        self.files.outgoing_files[i].finish(now, Err(why));
        self.cancel_queued(now, i);
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
            file: t.name.clone(),
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
