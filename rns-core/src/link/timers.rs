//! A link's timers and its end: when it next needs the clock, what each deadline does
//! (establishment, keepalive, staleness, request and proof timeouts, channel and resource
//! watchdogs), and closing.

use rand_core::CryptoRngCore;

use super::*;

impl Link {
    /// Close the link, telling the peer.
    pub fn close(&mut self, rng: &mut dyn CryptoRngCore, now: Instant) {
        if self.state == LinkState::Closed {
            return;
        }
        if self.state != LinkState::Pending {
            if let Some(ct) = self.encrypt(rng, &self.id.0.clone()) {
                self.push_out(
                    link_packet(&self.id, PacketType::Data, Context::LINKCLOSE, ct),
                    now,
                );
            }
        }
        self.closed(if self.initiator {
            CloseReason::InitiatorClosed
        } else {
            CloseReason::DestinationClosed
        });
    }

    /// Give up a handshake that has not completed, without telling the peer: the link
    /// closes with [`CloseReason::Timeout`], as its establishment timeout would close it.
    /// Established links are left alone.
    pub(crate) fn abandon(&mut self) {
        if matches!(self.state, LinkState::Pending | LinkState::Handshake) {
            self.closed(CloseReason::Timeout);
        }
    }

    /// When [`Link::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            LinkState::Closed => None,
            LinkState::Pending | LinkState::Handshake => {
                Some(self.request_time + self.establishment_timeout)
            }
            LinkState::Stale => self.close_at,
            LinkState::Active => {
                let keepalive = (self.last_inbound.max(self.activated_at) + self.keepalive)
                    .min(self.last_outbound + self.keepalive);
                let channel = self
                    .channel
                    .as_ref()
                    .and_then(channel::Channel::poll_timeout);
                let resources = self.poll_resource_timeout();
                Some(
                    [channel, resources]
                        .into_iter()
                        .flatten()
                        .fold(keepalive, Instant::min),
                )
            }
        }
    }

    /// Run the watchdog: establishment timeout, keepalives, stale detection, expiries.
    pub fn handle_timeout(&mut self, rng: &mut dyn CryptoRngCore, now: Instant) {
        for (h, _) in self
            .receipts
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(h, v)| (*h, *v))
            .collect::<Vec<_>>()
        {
            self.receipts.remove(&h);
            self.events.push_back(LinkEvent::ProofTimeout {
                link: self.id,
                packet_hash: h,
            });
        }
        for (r, _) in self
            .requests
            .iter()
            .filter(|(_, deadline)| now >= **deadline)
            .map(|(r, d)| (*r, *d))
            .collect::<Vec<_>>()
        {
            self.requests.remove(&r);
            self.events.push_back(LinkEvent::RequestTimeout {
                link: self.id,
                request_id: r,
            });
        }
        if matches!(self.state, LinkState::Active | LinkState::Stale) {
            self.resource_timers(rng, now);
            self.channel_timers(rng, now);
        }
        match self.state {
            LinkState::Closed => {}
            LinkState::Pending | LinkState::Handshake => {
                if now >= self.request_time + self.establishment_timeout {
                    self.closed(CloseReason::Timeout);
                }
            }
            LinkState::Active => {
                let last_in = self.last_inbound.max(self.activated_at);
                if now >= last_in + self.keepalive || now >= self.last_outbound + self.keepalive {
                    if self.initiator && now >= self.last_keepalive + self.keepalive {
                        self.push_out(
                            link_packet(&self.id, PacketType::Data, Context::KEEPALIVE, vec![0xFF]),
                            now,
                        );
                        self.last_keepalive = now;
                    }
                    if now >= last_in + self.stale_time {
                        self.state = LinkState::Stale;
                        let rtt = self.rtt.unwrap_or_default();
                        self.close_at = Some(now + rtt * KEEPALIVE_TIMEOUT_FACTOR + STALE_GRACE);
                    }
                }
            }
            LinkState::Stale => {
                if self.close_at.is_some_and(|t| now >= t) {
                    if let Some(ct) = self.encrypt(rng, &self.id.0.clone()) {
                        self.push_out(
                            link_packet(&self.id, PacketType::Data, Context::LINKCLOSE, ct),
                            now,
                        );
                    }
                    self.closed(CloseReason::Timeout);
                }
            }
        }
    }
}
