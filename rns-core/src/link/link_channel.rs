//! A link's side of its channel: messages and stream bytes in and out, one per CHANNEL
//! packet, and the channel's retransmit timers.

use rand_core::CryptoRngCore;

use super::*;

impl Link {
    pub(super) fn channel(&mut self) -> &mut channel::Channel {
        let rtt = self.rtt.unwrap_or_default();
        self.channel
            .get_or_insert_with(|| channel::Channel::new(rtt))
    }

    pub(super) fn receive_channel(&mut self, pt: &[u8]) {
        let Ok(env) = channel::Envelope::parse(pt) else {
            self.stats.dropped += 1;
            return;
        };
        for (msgtype, sequence, data) in self.channel().receive(env) {
            if msgtype != stream::STREAM_MSGTYPE {
                self.events.push_back(LinkEvent::ChannelMessage {
                    link: self.id,
                    msgtype,
                    sequence,
                    data,
                });
                continue;
            }
            match stream::parse(&data) {
                Ok(d) => self.events.push_back(LinkEvent::StreamData {
                    link: self.id,
                    stream_id: d.stream_id,
                    data: d.data,
                    eof: d.eof,
                }),
                Err(_) => self.stats.dropped += 1,
            }
        }
    }

    /// Whether the channel can take another message now.
    pub fn channel_ready(&self) -> bool {
        self.channel.as_ref().is_none_or(channel::Channel::ready)
    }

    /// The channel's send window (messages in flight at most), once the channel is in use.
    pub fn channel_window(&self) -> Option<u16> {
        self.channel.as_ref().map(channel::Channel::window)
    }

    /// Bytes a channel message may hold.
    pub fn channel_mdu(&self) -> usize {
        (self.mdu() - channel::ENVELOPE_HEADER_LEN).min(usize::from(u16::MAX))
    }

    /// Send a channel message of type `msgtype` (below `0xF000`); returns its sequence.
    /// A [`LinkEvent::ChannelDelivered`] follows when the peer proves it; unproven
    /// messages are retransmitted, and the link closes if one never gets through.
    pub fn channel_send(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        msgtype: u16,
        payload: &[u8],
    ) -> Result<u16, LinkError> {
        if msgtype >= channel::SYSTEM_MSGTYPE_MIN {
            return Err(LinkError::ReservedMessageType(msgtype));
        }
        self.channel_send_any(rng, now, msgtype, payload)
    }

    /// Write the front of `data` to stream `stream_id` as one channel message; returns how
    /// many bytes it took (call again with the rest) and the message's channel sequence.
    /// With `eof`, the message carrying the last byte (or an empty one) closes the stream.
    pub fn stream_send(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        stream_id: u16,
        data: &[u8],
        eof: bool,
    ) -> Result<(usize, u16), LinkError> {
        self.require_active()?;
        if !self.channel_ready() {
            return Err(LinkError::ChannelFull(self.id));
        }
        let max_body = self.channel_mdu() - stream::STREAM_HEADER_LEN;
        let (msg, used) = stream::next_message(stream_id, data, eof, max_body)?;
        let sequence = self.channel_send_any(rng, now, stream::STREAM_MSGTYPE, &msg)?;
        Ok((used, sequence))
    }

    pub(super) fn channel_send_any(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        msgtype: u16,
        payload: &[u8],
    ) -> Result<u16, LinkError> {
        self.require_active()?;
        if payload.len() > self.channel_mdu() {
            return Err(LinkError::TooLarge {
                size: payload.len(),
                mdu: self.channel_mdu(),
            });
        }
        if !self.channel_ready() {
            return Err(LinkError::ChannelFull(self.id));
        }
        let (sequence, env) = self.channel().next_envelope(msgtype, payload);
        let hash = self.send_channel_packet(rng, now, &env)?;
        let rtt = self.rtt.unwrap_or_default();
        self.channel().sent(sequence, env, hash, now, rtt);
        Ok(sequence)
    }

    pub(super) fn send_channel_packet(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        envelope: &[u8],
    ) -> Result<[u8; FULL_HASH_LEN], LinkError> {
        let ct = self
            .encrypt(rng, envelope)
            .ok_or(LinkError::NotActive(self.id))?;
        let raw = link_packet(&self.id, PacketType::Data, Context::CHANNEL, ct);
        let hash = crate::packet::PacketView::new_checked(&raw[..])
            .expect("well-formed")
            .hash();
        self.push_out(raw, now);
        Ok(hash)
    }

    pub(super) fn channel_timers(&mut self, rng: &mut dyn CryptoRngCore, now: Instant) {
        let Some(action) = self.channel.as_mut().and_then(|c| c.handle_timeout(now)) else {
            return;
        };
        let rtt = self.rtt.unwrap_or_default();
        match action {
            channel::TimerAction::Resend(list) => {
                for (sequence, env) in list {
                    if let Ok(hash) = self.send_channel_packet(rng, now, &env) {
                        self.channel().resent(sequence, hash, now, rtt);
                    }
                }
            }
            channel::TimerAction::Teardown => {
                if let Some(ct) = self.encrypt(rng, &self.id.0.clone()) {
                    self.push_out(
                        link_packet(&self.id, PacketType::Data, Context::LINKCLOSE, ct),
                        now,
                    );
                }
                self.closed(CloseReason::Undeliverable);
            }
        }
    }
}
