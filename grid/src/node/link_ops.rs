//! Link operations, whoever asks: the control socket's link [`crate::control::Request`]s
//! become a [`LinkOp`] (payload files read), the embedded API builds one directly, and
//! both get their answer through a [`Reply`].

use std::time::Duration;

use rns_core::link::LinkId;
use rns_core::{rmpv, AddressHash, Instant};

use super::reply::{Outcome, Reply};
use super::waiters::Wait;
use super::Node;

/// Something to do with a link.
#[derive(Debug, Clone)]
pub(crate) enum LinkOp {
    /// Find a path if needed, then open a link; answers [`Outcome::LinkUp`].
    Open {
        destination: AddressHash,
        timeout: Duration,
    },
    /// Send one packet; answers [`Outcome::Proven`] when the peer proves it.
    Send {
        link: LinkId,
        data: Vec<u8>,
        timeout: Duration,
    },
    /// Send one packet without waiting for its proof; answers [`Outcome::Sent`].
    SendNoWait { link: LinkId, data: Vec<u8> },
    /// Send one packet when the link's window has room ([`super::paced`]); answers
    /// [`Outcome::Sent`] once sent.
    SendPaced { link: LinkId, data: Vec<u8> },
    /// Send a request; answers [`Outcome::Response`].
    Request {
        link: LinkId,
        path: String,
        data: rmpv::Value,
        timeout: Duration,
    },
    /// Reveal our identity (links we opened); answers [`Outcome::Identified`].
    Identify { link: LinkId },
    /// Close the link; answers [`Outcome::Closed`].
    Close { link: LinkId },
    /// Send a channel message; answers [`Outcome::Delivered`] when proven.
    Channel {
        link: LinkId,
        msgtype: u16,
        data: Vec<u8>,
        timeout: Duration,
    },
    /// Write bytes to a stream; answers [`Outcome::StreamDelivered`] when all are proven.
    Stream {
        link: LinkId,
        stream_id: u16,
        data: Vec<u8>,
        eof: bool,
        timeout: Duration,
    },
}

impl Node {
    /// Run a link operation; `reply` is answered now or when the network has answered.
    pub(super) fn link_op(&mut self, now: Instant, op: LinkOp, reply: Reply) {
        match op {
            LinkOp::Open {
                destination,
                timeout,
            } => {
                if self.transport.path(&destination).is_none() {
                    self.transport.request_path(now, &destination, None);
                    self.wait(now + timeout, reply, Wait::LinkPath(destination));
                } else {
                    match self.transport.open_link(now, &destination) {
                        Ok(link) => self.wait(now + timeout, reply, Wait::LinkUp(link)),
                        Err(e) => reply.fail(e),
                    }
                }
            }
            LinkOp::Send {
                link,
                data,
                timeout,
            } => match self.transport.link_send(now, &link, &data) {
                Ok(packet) => self.wait(now + timeout, reply, Wait::LinkProof { link, packet }),
                Err(e) => reply.fail(e),
            },
            LinkOp::SendPaced { link, data } => self.send_paced(now, link, data, reply),
            LinkOp::SendNoWait { link, data } => {
                match self.transport.link_send(now, &link, &data) {
                    Ok(_) => reply.ok(Outcome::Sent { link }),
                    Err(e) => reply.fail(e),
                }
            }
            LinkOp::Request {
                link,
                path,
                data,
                timeout,
            } => match self
                .transport
                .link_request(now, &link, &path, &data, Some(timeout))
            {
                // Progress frames for a command are taken only on the link that carried it.
                Ok(request) if path == crate::commands::FRAME_PATH => {
                    if let rmpv::Value::Binary(b) = &data {
                        self.grid.layer.expect_progress(link, b);
                    }
                    self.wait(
                        now + timeout + Duration::from_secs(1),
                        reply,
                        Wait::LinkResponse { link, request },
                    )
                }
                // The link reports the timeout; the waiter's deadline is only a backstop.
                Ok(request) => self.wait(
                    now + timeout + Duration::from_secs(1),
                    reply,
                    Wait::LinkResponse { link, request },
                ),
                Err(e) => reply.fail(e),
            },
            LinkOp::Identify { link } => {
                let id = self.identity.clone();
                match self.transport.link_identify(now, &link, &id) {
                    Ok(()) => reply.ok(Outcome::Identified {
                        link,
                        identity: id.hash(),
                    }),
                    Err(e) => reply.fail(e),
                }
            }
            LinkOp::Close { link } => match self.transport.close_link(now, &link) {
                Ok(()) => reply.ok(Outcome::Closed { link }),
                Err(e) => reply.fail(e),
            },
            LinkOp::Channel {
                link,
                msgtype,
                data,
                timeout,
            } => match self.transport.link_channel_send(now, &link, msgtype, &data) {
                Ok(sequence) => self.wait(
                    now + timeout,
                    reply,
                    Wait::ChannelDelivered { link, sequence },
                ),
                Err(e) => reply.fail(e),
            },
            LinkOp::Stream {
                link,
                stream_id,
                data,
                eof,
                timeout,
            } => {
                if data.is_empty() && !eof {
                    return reply.fail(crate::Error::BadRequest(
                        "nothing to write: give data or eof".into(),
                    ));
                }
                self.queue_stream_write(now, link, stream_id, data, eof, reply, now + timeout);
            }
        }
    }
}
