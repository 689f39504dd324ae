//! The node's side of link channels and streams: inboxes for received messages and stream
//! bytes, and outgoing streams pumped through the channel window as deliveries free it.

use std::collections::{HashMap, VecDeque};

use rns_core::link::LinkId;
use rns_core::Instant;

use super::reply::{Outcome, Reply};
use super::Node;
use crate::control::response::{ChannelMessage, StreamChunk};

/// Channel messages kept per link until read, at most (older ones are dropped).
const MESSAGES_PER_LINK: usize = 256;
/// Stream bytes buffered per link until read, at most; beyond this, data is dropped and
/// the stream is marked as having overflowed.
const STREAM_BYTES_PER_LINK: usize = 16 * 1024 * 1024;
/// Bytes of channel messages and stream data kept for all links together, at most; past
/// it new data is dropped (streams are marked as having overflowed), so many links
/// cannot add up to more than this.
pub(super) const INBOX_BYTES_PER_NODE: usize = 64 * 1024 * 1024;
/// Outgoing stream writes queued per link, at most.
const WRITES_PER_LINK: usize = 16;

/// What a link has received on its channel and not yet handed out.
#[derive(Debug, Default)]
pub(super) struct ChannelInbox {
    messages: VecDeque<(u16, Vec<u8>)>,
    streams: HashMap<u16, StreamIn>,
    buffered: usize,
    message_bytes: usize,
}

#[derive(Debug, Default)]
struct StreamIn {
    data: Vec<u8>,
    eof: bool,
    overflowed: bool,
}

/// A stream write waiting for window space, then for its last message's proof.
#[derive(Debug)]
pub(super) struct StreamWrite {
    stream_id: u16,
    data: Vec<u8>,
    offset: usize,
    eof: bool,
    /// Sequence of the last message sent so far.
    last_sequence: Option<u16>,
    /// All of it (and the EOF, if asked) has been handed to the channel.
    queued: bool,
    reply: Option<Reply>,
    deadline: Instant,
}

impl ChannelInbox {
    /// Bytes held (messages and stream data).
    pub(super) fn bytes(&self) -> usize {
        self.buffered + self.message_bytes
    }

    /// Take everything received, for the control socket.
    pub(super) fn take_all(&mut self) -> (Vec<ChannelMessage>, Vec<StreamChunk>) {
        self.message_bytes = 0;
        let messages = self
            .messages
            .drain(..)
            .map(|(msgtype, d)| ChannelMessage {
                msgtype,
                data: super::links::bytes_json(&d),
            })
            .collect();
        let mut ids: Vec<u16> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        let streams = ids
            .into_iter()
            .filter_map(|id| {
                let s = self.streams.get_mut(&id)?;
                let data = std::mem::take(&mut s.data);
                self.buffered -= data.len();
                let v = StreamChunk {
                    stream_id: id,
                    len: data.len(),
                    sha256: hex::encode(rns_core::hash::full_hash(&data)),
                    eof: s.eof,
                    overflowed: s.overflowed,
                    data: super::links::bytes_json(&data),
                };
                if s.eof {
                    self.streams.remove(&id);
                }
                Some(v)
            })
            .collect();
        (messages, streams)
    }
}

impl Node {
    pub(super) fn on_channel_message(&mut self, link: LinkId, msgtype: u16, data: Vec<u8>) {
        let full = self.links.channel_bytes + data.len() > INBOX_BYTES_PER_NODE;
        let inbox = self.links.channel_inbox.entry(link).or_default();
        let before = inbox.bytes();
        if inbox.messages.len() >= MESSAGES_PER_LINK {
            if let Some((_, old)) = inbox.messages.pop_front() {
                inbox.message_bytes -= old.len();
            }
        }
        if full {
            tracing::debug!(%link, "channel inboxes full; message dropped");
        } else {
            inbox.message_bytes += data.len();
            inbox.messages.push_back((msgtype, data));
        }
        self.links.channel_bytes = self.links.channel_bytes - before + inbox.bytes();
    }

    /// Take what `link` received on its channel (for `grid link recv`).
    pub(super) fn take_channel_inbox(
        &mut self,
        link: &LinkId,
    ) -> (Vec<ChannelMessage>, Vec<StreamChunk>) {
        let Some(inbox) = self.links.channel_inbox.get_mut(link) else {
            return Default::default();
        };
        let before = inbox.bytes();
        let taken = inbox.take_all();
        self.links.channel_bytes = self.links.channel_bytes - before + inbox.bytes();
        taken
    }

    pub(super) fn on_stream_data(
        &mut self,
        link: LinkId,
        stream_id: u16,
        data: Vec<u8>,
        eof: bool,
    ) {
        let node_room = INBOX_BYTES_PER_NODE.saturating_sub(self.links.channel_bytes);
        let inbox = self.links.channel_inbox.entry(link).or_default();
        let before = inbox.bytes();
        let room = STREAM_BYTES_PER_LINK
            .saturating_sub(inbox.buffered)
            .min(node_room);
        let s = inbox.streams.entry(stream_id).or_default();
        if data.len() > room {
            if !s.overflowed {
                tracing::warn!(%link, stream_id, "stream buffer full; dropping data until it is read");
            }
            s.overflowed = true;
        } else {
            inbox.buffered += data.len();
            s.data.extend_from_slice(&data);
        }
        s.eof |= eof;
        self.links.channel_bytes = self.links.channel_bytes - before + inbox.bytes();
    }

    /// Queue bytes for a stream on a link; the reply comes once the last message is proven.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_stream_write(
        &mut self,
        now: Instant,
        link: LinkId,
        stream_id: u16,
        data: Vec<u8>,
        eof: bool,
        reply: Reply,
        deadline: Instant,
    ) {
        if self.transport.link(&link).is_none() {
            reply.fail(crate::Error::LinkClosed(format!("no such link {link}")));
            return;
        }
        if stream_id > rns_core::link::stream::STREAM_ID_MAX {
            reply.fail(crate::Error::BadRequest(format!(
                "stream id {stream_id} exceeds 16383"
            )));
            return;
        }
        let q = self.links.stream_writes.entry(link).or_default();
        if q.len() >= WRITES_PER_LINK {
            reply.fail(crate::Error::Busy(format!(
                "too many stream writes queued on link {link}"
            )));
            return;
        }
        q.push_back(StreamWrite {
            stream_id,
            data,
            offset: 0,
            eof,
            last_sequence: None,
            queued: false,
            reply: Some(reply),
            deadline,
        });
        self.pump_streams(now, link);
    }

    /// Hand queued stream bytes to the link's channel while its window has room.
    pub(super) fn pump_streams(&mut self, now: Instant, link: LinkId) {
        loop {
            let Some(w) = self
                .links
                .stream_writes
                .get_mut(&link)
                .and_then(|q| q.iter_mut().find(|w| !w.queued))
            else {
                return;
            };
            let rest = &w.data[w.offset..];
            match self
                .transport
                .link_stream_send(now, &link, w.stream_id, rest, w.eof)
            {
                Ok((used, sequence)) => {
                    w.offset += used;
                    w.last_sequence = Some(sequence);
                    // Done when every byte is out, and (with EOF) the flag rode along.
                    if w.offset == w.data.len() {
                        w.queued = true;
                    }
                }
                Err(rns_core::link::LinkError::ChannelFull(_)) => return,
                Err(e) => {
                    if let Some(r) = w.reply.take() {
                        r.fail(e);
                    }
                    w.queued = true;
                    w.last_sequence = None;
                    self.finish_stream_writes(link);
                    return;
                }
            }
        }
    }

    /// A channel message was proven: complete the writes it finishes, then send more.
    pub(super) fn on_channel_delivered(&mut self, now: Instant, link: LinkId, sequence: u16) {
        if let Some(q) = self.links.stream_writes.get_mut(&link) {
            for w in q.iter_mut() {
                if w.queued && w.last_sequence == Some(sequence) {
                    if let Some(r) = w.reply.take() {
                        r.ok(Outcome::StreamDelivered {
                            link,
                            stream_id: w.stream_id,
                            bytes: w.data.len(),
                            eof: w.eof,
                        });
                    }
                    w.last_sequence = None;
                }
            }
        }
        self.finish_stream_writes(link);
        self.answer(
            |w| matches!(w, super::waiters::Wait::ChannelDelivered { link: l, sequence: s } if *l == link && *s == sequence),
            |_| Ok(Outcome::Delivered { link, sequence }),
        );
        self.pump_streams(now, link);
    }

    /// Drop completed writes from the front of a link's queue.
    fn finish_stream_writes(&mut self, link: LinkId) {
        if let Some(q) = self.links.stream_writes.get_mut(&link) {
            q.retain(|w| w.reply.is_some());
            if q.is_empty() {
                self.links.stream_writes.remove(&link);
            }
        }
    }

    /// The link closed: fail its pending writes and forget its inbox.
    pub(super) fn channels_link_closed(&mut self, link: &LinkId) {
        if let Some(inbox) = self.links.channel_inbox.remove(link) {
            self.links.channel_bytes -= inbox.bytes();
        }
        for mut w in self.links.stream_writes.remove(link).unwrap_or_default() {
            if let Some(r) = w.reply.take() {
                r.fail(crate::Error::LinkClosed(format!(
                    "link {link} closed before the stream was delivered"
                )));
            }
        }
    }

    /// Fail stream writes whose deadline passed (their bytes may still be delivered).
    pub(super) fn expire_stream_writes(&mut self, now: Instant) {
        let links: Vec<LinkId> = self.links.stream_writes.keys().copied().collect();
        for link in links {
            if let Some(q) = self.links.stream_writes.get_mut(&link) {
                for w in q.iter_mut().filter(|w| now >= w.deadline) {
                    if let Some(r) = w.reply.take() {
                        r.fail(crate::Error::Timeout(format!(
                            "stream write on link {link} not delivered in time ({} of {} bytes sent)",
                            w.offset,
                            w.data.len()
                        )));
                    }
                }
            }
            self.finish_stream_writes(link);
        }
    }

    /// The earliest stream-write deadline.
    pub(super) fn next_stream_deadline(&self) -> Option<Instant> {
        self.links
            .stream_writes
            .values()
            .flat_map(|q| q.iter().map(|w| w.deadline))
            .min()
    }
}
