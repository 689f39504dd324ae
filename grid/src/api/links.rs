//! Links through a node handle: open, send, requests, identify, close, channel messages,
//! streams, resources, request handlers.

use std::time::Duration;

use rns_core::link::LinkId;
use rns_core::transport::LinkInfo;
use rns_core::{rmpv, AddressHash};

use super::*;
use crate::node::link_ops::LinkOp;
use crate::node::reply::Outcome;

impl NodeHandle {
    /// Open a link to a SINGLE destination, finding a path first if needed.
    pub async fn open_link(
        &self,
        destination: AddressHash,
        timeout: Duration,
    ) -> Result<LinkUp, Error> {
        self.link_op(
            LinkOp::Open {
                destination,
                timeout,
            },
            |o| match o {
                Outcome::LinkUp { link, rtt, mtu } => Some(LinkUp { link, rtt, mtu }),
                _ => None,
            },
        )
        .await
    }

    /// Send one packet (at most the link MDU) and wait for the peer's proof; returns the
    /// round-trip time.
    pub async fn send(
        &self,
        link: LinkId,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Duration, Error> {
        let op = LinkOp::Send {
            link,
            data: data.to_vec(),
            timeout,
        };
        self.link_op(op, |o| match o {
            Outcome::Proven { rtt, .. } => Some(rtt),
            _ => None,
        })
        .await
    }

    /// Send one packet (at most the link MDU) without waiting for a proof (RNS's
    /// `RNS.Packet(link, data).send()` with the receipt ignored: peers whose destination
    /// proves nothing, as RNS's default, never answer one).
    pub async fn send_nowait(&self, link: LinkId, data: &[u8]) -> Result<(), Error> {
        let op = LinkOp::SendNoWait {
            link,
            data: data.to_vec(),
        };
        self.link_op(op, |o| matches!(o, Outcome::Sent { .. }).then_some(()))
            .await
    }

    /// Send one packet with backpressure: it goes out when fewer than 8 packets on this
    /// link wait for their proofs, and this call returns once it is sent; so a loop of
    /// `send_paced` streams at the link's speed without loss. More than 256 waiting on a
    /// link answer `busy`. The peer must prove link packets (Grid nodes and RNS
    /// destinations with `PROVE_ALL` do); else each slot frees only when its proof
    /// times out.
    pub async fn send_paced(&self, link: LinkId, data: &[u8]) -> Result<(), Error> {
        let op = LinkOp::SendPaced {
            link,
            data: data.to_vec(),
        };
        self.link_op(op, |o| matches!(o, Outcome::Sent { .. }).then_some(()))
            .await
    }

    /// Send a request to `path` and wait for the response.
    pub async fn request(
        &self,
        link: LinkId,
        path: &str,
        data: rmpv::Value,
        timeout: Duration,
    ) -> Result<rmpv::Value, Error> {
        let op = LinkOp::Request {
            link,
            path: path.to_string(),
            data,
            timeout,
        };
        self.link_op(op, |o| match o {
            Outcome::Response { data, .. } => Some(data),
            _ => None,
        })
        .await
    }

    /// Reveal this node's identity on a link it opened.
    pub async fn identify(&self, link: LinkId) -> Result<(), Error> {
        self.link_op(LinkOp::Identify { link }, |o| {
            matches!(o, Outcome::Identified { .. }).then_some(())
        })
        .await
    }

    /// Close a link.
    pub async fn close_link(&self, link: LinkId) -> Result<(), Error> {
        self.link_op(LinkOp::Close { link }, |o| {
            matches!(o, Outcome::Closed { .. }).then_some(())
        })
        .await
    }

    /// Send a channel message (type below `0xF000`) and wait until it is proven; returns
    /// its sequence number. Fails at once if the channel window is full.
    pub async fn channel_send(
        &self,
        link: LinkId,
        msgtype: u16,
        data: &[u8],
        timeout: Duration,
    ) -> Result<u16, Error> {
        let op = LinkOp::Channel {
            link,
            msgtype,
            data: data.to_vec(),
            timeout,
        };
        self.link_op(op, |o| match o {
            Outcome::Delivered { sequence, .. } => Some(sequence),
            _ => None,
        })
        .await
    }

    /// Write bytes to a stream (RNS Buffer), optionally closing it, and wait until every
    /// byte is proven.
    pub async fn stream_write(
        &self,
        link: LinkId,
        stream_id: u16,
        data: &[u8],
        eof: bool,
        timeout: Duration,
    ) -> Result<(), Error> {
        let op = LinkOp::Stream {
            link,
            stream_id,
            data: data.to_vec(),
            eof,
            timeout,
        };
        self.link_op(op, |o| {
            matches!(o, Outcome::StreamDelivered { .. }).then_some(())
        })
        .await
    }

    /// Send up to 1 MiB (data and packed metadata together) as one resource and wait for
    /// the receiver's proof. Larger data, files and streams of any size go with
    /// [`NodeHandle::send_file`] and [`NodeHandle::send_reader`].
    pub async fn send_resource(
        &self,
        link: LinkId,
        data: Vec<u8>,
        metadata: Option<rmpv::Value>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let options = ResourceOptions {
            metadata,
            compress: true,
            timeout,
        };
        self.send_resource_with(link, data, options).await
    }

    /// [`NodeHandle::send_resource`] with its options spelled out (RNS:
    /// `RNS.Resource(data, link, metadata=…, auto_compress=…)`). Progress arrives as
    /// [`NodeEvent::ResourceProgress`](super::NodeEvent::ResourceProgress) events.
    pub async fn send_resource_with(
        &self,
        link: LinkId,
        data: Vec<u8>,
        options: ResourceOptions,
    ) -> Result<(), Error> {
        let ResourceOptions {
            metadata,
            compress,
            timeout,
        } = options;
        self.call(
            |reply| Call::SendResource {
                link,
                data,
                metadata,
                compress,
                timeout,
                reply,
            },
            |o| matches!(o, Outcome::ResourceDelivered { .. }).then_some(()),
        )
        .await
    }

    /// Answer requests for `path` on links to any destination this node hosts (`grid.node`
    /// and the program's own). Replaces an earlier handler for the same path.
    pub async fn register_handler(
        &self,
        path: &str,
        handler: impl Fn(&Request) -> Option<rmpv::Value> + Send + Sync + 'static,
    ) -> Result<(), Error> {
        self.ask(|tx| Call::Handler(path.to_string(), Arc::new(handler), tx))
            .await
    }

    /// Answer requests for `path` like [`NodeHandle::register_handler`], but each on a task
    /// of its own, so a handler that reads files or waits may take its time without
    /// stalling the node. The node runs at most [`MAX_ASYNC_REQUESTS`] of
    /// them at once; requests beyond that get no response (the requester times out).
    /// Replaces an earlier handler (of either kind) for the same path.
    pub async fn register_async_handler<F, Fut>(&self, path: &str, handler: F) -> Result<(), Error>
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<rmpv::Value>> + Send + 'static,
    {
        let handler: AsyncRequestHandler = Arc::new(move |req| Box::pin(handler(req)));
        self.ask(|tx| Call::AsyncHandler(path.to_string(), handler, tx))
            .await
    }

    /// The trust level `identity` holds on this node, if the node's ACL lets a caller of
    /// that level run `command` (as a command frame from it would be checked); otherwise
    /// why not. Services use it for what they answer outside command frames (request
    /// paths of their own).
    pub async fn authorize(
        &self,
        identity: AddressHash,
        command: &str,
    ) -> Result<Result<crate::trust::TrustLevel, crate::acl::Denied>, Error> {
        self.ask(|tx| Call::Authorize(identity, command.to_string(), tx))
            .await
    }

    /// Accept resources offered on links to `grid.node`, to the program's destinations and
    /// on links it opened, and deliver them as [`NodeEvent::Resource`] (up to 64 MiB each,
    /// assembled in memory; [`NodeHandle::accept_resources_into`] for any size).
    pub async fn accept_resources(&self, accept: bool) -> Result<(), Error> {
        self.ask(|tx| Call::AcceptResources(accept, tx)).await
    }

    /// Accept resources offered on links to `grid.node` and to the program's destinations
    /// of any size up to `max_bytes` each, written into `dir` a segment at a time (never
    /// held in memory) and delivered as
    /// [`NodeEvent::ResourceSaved`](super::NodeEvent::ResourceSaved) with their path once
    /// the last segment is verified; a failed transfer leaves nothing behind. RNS keeps
    /// resources in its storage directory and hands the program a file; this is that.
    /// `accept_resources(false)` stops it.
    pub async fn accept_resources_into(
        &self,
        dir: impl Into<std::path::PathBuf>,
        max_bytes: u64,
    ) -> Result<(), Error> {
        let dir = dir.into();
        self.ask(|tx| Call::AcceptResourcesInto(dir, max_bytes, tx))
            .await
    }

    /// The node's links.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, Error> {
        self.ask(Call::Links).await
    }

    /// An active link this node opened to `node`, or a new one (identified).
    pub async fn link_to(&self, node: AddressHash, timeout: Duration) -> Result<LinkId, Error> {
        let existing = self.links().await?.into_iter().find(|l| {
            l.destination == node && l.initiator && l.state == rns_core::link::LinkState::Active
        });
        if let Some(l) = existing {
            return Ok(l.id);
        }
        let up = self.open_link(node, timeout).await?;
        self.identify(up.link).await?;
        Ok(up.link)
    }
}

/// How [`NodeHandle::send_resource_with`] sends a resource.
#[derive(Debug, Clone)]
pub struct ResourceOptions {
    /// The sender's metadata, if any (RNS's `metadata`).
    pub metadata: Option<rmpv::Value>,
    /// Compress (bz2) when that makes it smaller (RNS's `auto_compress`); off for data
    /// known not to compress, to spare the work.
    pub compress: bool,
    /// How long to wait for the receiver's proof.
    pub timeout: Duration,
}
