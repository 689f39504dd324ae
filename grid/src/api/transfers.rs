//! Resources of any size from files and byte streams (RNS: `RNS.Resource(open(path, "rb"),
//! link)`), with their progress and `cancel()`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rns_core::link::LinkId;
use tokio::sync::oneshot;

use super::{Call, NodeHandle, ResourceOptions};
use crate::control::response::{self as r, CpStatus};
use crate::control::Request;
use crate::node::outgoing_files::{AppTransfer, Source};
use crate::Error;

/// A resource being sent from a file or a stream, segment by segment (1 MiB − 1 each, as
/// RNS cuts them). Await [`ResourceTransfer::finished`], ask its
/// [`status`](ResourceTransfer::status), or [`cancel`](ResourceTransfer::cancel) it.
#[derive(Debug)]
#[must_use = "a transfer's outcome arrives through `finished`"]
pub struct ResourceTransfer {
    id: String,
    node: NodeHandle,
    timeout: Duration,
    done: oneshot::Receiver<Result<(), Error>>,
}

impl ResourceTransfer {
    /// The transfer's id (also what `grid cp --status`-style status calls take).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Bytes proven so far, the total, the rate and the state.
    pub async fn status(&self) -> Result<CpStatus, Error> {
        self.node.transfer_status(&self.id).await
    }

    /// Cancel it (RNS: `resource.cancel()`): the receiver is told, nothing more is sent;
    /// [`finished`](ResourceTransfer::finished) then answers [`Error::Cancelled`]. Whether
    /// it was still going.
    pub async fn cancel(&self) -> Result<bool, Error> {
        self.node.cancel_transfer(&self.id).await
    }

    /// Wait until the receiver has proven the last segment. A transfer still going when
    /// the options' `timeout` has passed since it started is cancelled
    /// ([`Error::Timeout`]).
    pub async fn finished(self) -> Result<(), Error> {
        match tokio::time::timeout(self.timeout, self.done).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => {
                self.node.cancel_transfer(&self.id).await?;
                Err(Error::Timeout(format!(
                    "transfer {} did not finish within {:?}; cancelled",
                    self.id, self.timeout
                )))
            }
        }
    }
}

impl NodeHandle {
    /// Send a file of any size as a resource on `link` (RNS: `RNS.Resource(file, link,
    /// metadata=…, auto_compress=…)`): read a segment at a time off the event loop, so
    /// memory stays at two segments however large the file. Progress arrives as
    /// [`NodeEvent::ResourceProgress`](super::NodeEvent::ResourceProgress) per segment and
    /// through [`ResourceTransfer::status`] for the whole.
    pub async fn send_file(
        &self,
        link: LinkId,
        path: impl AsRef<Path>,
        options: ResourceOptions,
    ) -> Result<ResourceTransfer, Error> {
        let path = path.as_ref();
        let unreadable = |e: std::io::Error| Error::BadRequest(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            let e = format!("{}: not a regular file", path.display());
            return Err(Error::BadRequest(e));
        }
        let source = Source::File(std::sync::Arc::new(file));
        let name = path.display().to_string();
        self.start_transfer(link, source, meta.len(), name, options)
            .await
    }

    /// Send exactly `len` bytes read from `reader` as a resource on `link` (RNS: a
    /// resource from a file-like object): read in order, a segment at a time, on blocking
    /// threads. A reader that ends early fails the transfer.
    pub async fn send_reader(
        &self,
        link: LinkId,
        reader: impl Read + Send + 'static,
        len: u64,
        options: ResourceOptions,
    ) -> Result<ResourceTransfer, Error> {
        let source = Source::reader(reader);
        self.start_transfer(link, source, len, "stream".into(), options)
            .await
    }

    async fn start_transfer(
        &self,
        link: LinkId,
        source: Source,
        len: u64,
        name: String,
        options: ResourceOptions,
    ) -> Result<ResourceTransfer, Error> {
        let (done, rx) = oneshot::channel();
        let request = AppTransfer {
            link,
            source,
            len,
            name,
            metadata: options.metadata,
            compress: options.compress,
            done,
        };
        let id = self
            .ask(|tx| Call::SendTransfer(Box::new(request), tx))
            .await??;
        Ok(ResourceTransfer {
            id,
            node: self.clone(),
            timeout: options.timeout,
            done: rx,
        })
    }

    /// Cancel a transfer this node is sending (by its [`ResourceTransfer::id`]); whether
    /// it was still going.
    pub async fn cancel_transfer(&self, id: &str) -> Result<bool, Error> {
        self.ask(|tx| Call::CancelTransfer(id.to_string(), tx))
            .await
    }

    /// A transfer's progress: bytes proven, total, rate, state.
    pub async fn transfer_status(&self, id: &str) -> Result<CpStatus, Error> {
        let v = self
            .control(Request::CpStatus { id: id.to_string() })
            .await?;
        r::parse(v).map_err(|e| Error::BadResponse(e.to_string()))
    }
}
