//! Outbound processing: routing by the path table, broadcast with the announce rules,
//! announcing local destinations and sending SINGLE packets.

use super::announce_cap::CapDecision;
use super::interface::InterfaceMode;
use super::receipts::Receipt;
use super::{Event, InterfaceId, SendError, Transmit, Transport, PER_HOP_TIMEOUT};
use crate::announce::{self, emission_time, RANDOM_HASH_LEN};
use crate::destination::DestinationType;
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::packet::{
    Context, Flags, Packet, PacketType, PacketView, TransportType, ENCRYPTED_MDU, MAX_HOPS, MTU,
};
use crate::time::Instant;

impl Transport {
    /// Send a logical packet: along its path if one is known, else broadcast.
    ///
    /// `attached` restricts broadcasts to one interface. Returns whether anything was sent.
    pub(crate) fn route(
        &mut self,
        now: Instant,
        raw: Vec<u8>,
        attached: Option<InterfaceId>,
    ) -> bool {
        let Ok(view) = PacketView::new_checked(&raw[..]) else {
            return false;
        };
        if view.hops() >= MAX_HOPS {
            return false;
        }
        let flags = view.flags();
        let d = view.destination();
        let hops = view.hops();
        let is_h2 = view.transport_id().is_some();
        let emitted = view
            .data()
            .get(74..84)
            .and_then(|b| <[u8; RANDOM_HASH_LEN]>::try_from(b).ok())
            .map_or(0, |b| emission_time(&b));
        let routable = flags.packet_type != PacketType::Announce
            && !matches!(
                flags.destination_type,
                DestinationType::Plain | DestinationType::Group
            );
        if routable {
            if let Some(path) = self.paths.get_mut(&d) {
                path.timestamp = super::path_table::secs(now);
                let iface = path.interface;
                if let Some(i) = self.interfaces.get(&iface) {
                    path.expires = super::path_table::secs(now + i.config.mode.path_lifetime());
                }
                // A local client reaches even its instance's neighbours through it.
                let via_instance = self
                    .interfaces
                    .get(&iface)
                    .is_some_and(|i| i.config.local == super::interface::LocalRole::Instance);
                if (path.hops > 1 || (path.hops == 1 && via_instance)) && !is_h2 {
                    let mut out = Vec::with_capacity(raw.len() + 16);
                    out.push(Flags::HEADER_2 | Flags::TRANSPORT | (raw[0] & 0x0F));
                    out.push(raw[1]);
                    out.extend_from_slice(path.next_hop.as_bytes());
                    out.extend_from_slice(&raw[2..]);
                    self.transmit(iface, out);
                } else {
                    self.transmit(iface, raw);
                }
                return true;
            }
        }

        let targets: Vec<InterfaceId> = match attached {
            Some(i) => vec![i],
            None => self.interfaces.keys().copied().collect(),
        };
        let is_announce = flags.packet_type == PacketType::Announce;
        let local = self.destinations.contains_key(&d);
        let from_mode = self
            .paths
            .get(&d)
            .and_then(|p| self.interfaces.get(&p.interface))
            .map(|s| s.config.mode);
        // The frame goes to every chosen interface; all but the last get a copy.
        let mut chosen: Option<InterfaceId> = None;
        let mut hashed = false;
        for iface in targets {
            let Some(state) = self.interfaces.get_mut(&iface) else {
                continue;
            };
            if !state.online || !state.config.outbound {
                continue;
            }
            if is_announce && attached.is_none() {
                if !local && from_mode.is_none() {
                    continue;
                }
                if !announce_allowed(state.config.mode, local, from_mode) {
                    continue;
                }
                let capped = !matches!(
                    state.config.mode,
                    InterfaceMode::AccessPoint
                        | InterfaceMode::Roaming
                        | InterfaceMode::Boundary
                        | InterfaceMode::Internal
                );
                if capped && hops > 0 {
                    let (bitrate, cap) = (state.config.bitrate, state.config.announce_cap);
                    match state.cap.offer(now, (bitrate, cap), d, hops, emitted, &raw) {
                        CapDecision::Send => {}
                        CapDecision::Queued | CapDecision::Dropped => continue,
                    }
                }
            }
            // Contexts that bypass the inbound duplicate filter gain nothing from being
            // remembered (and resource parts would hash every byte of a transfer).
            if !hashed && !is_announce && !view.context().bypasses_duplicate_filter() {
                self.hashlist
                    .insert(view.hash()[..16].try_into().expect("16"));
                hashed = true;
            }
            if is_announce {
                if let Some(s) = self.interfaces.get_mut(&iface) {
                    s.stats.tx_announces += 1;
                }
            }
            if let Some(earlier) = chosen.replace(iface) {
                self.transmit(earlier, raw.clone());
            }
        }
        match chosen {
            Some(last) => {
                self.transmit(last, raw);
                true
            }
            None => false,
        }
    }

    /// Queue a frame on an interface, applying its IFAC.
    pub(crate) fn transmit(&mut self, iface: InterfaceId, raw: Vec<u8>) {
        let Some(state) = self.interfaces.get_mut(&iface) else {
            return;
        };
        if !state.online {
            return;
        }
        if self.transmits.len() >= self.config.max_pending_transmits {
            self.stats.dropped_transmits += 1;
            return;
        }
        let frame = match &state.config.ifac {
            Some(i) => i.apply(&raw),
            None => raw,
        };
        state.stats.tx_packets += 1;
        state.stats.tx_bytes += frame.len() as u64;
        self.transmits.push_back(Transmit {
            interface: iface,
            frame,
        });
    }

    /// Build the announce packet for a local destination.
    fn build_announce(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        app_data: Option<&[u8]>,
        path_response: bool,
    ) -> Result<Packet, SendError> {
        let local = self
            .destinations
            .get(destination)
            .ok_or(SendError::NotLocal(*destination))?;
        let identity = local
            .identity
            .clone()
            .ok_or(SendError::NotLocal(*destination))?;
        let name_hash = local.name_hash;
        let app_data = app_data.map_or_else(|| local.app_data.clone(), <[u8]>::to_vec);
        let ratchet = self.announce_ratchet(now.as_secs(), destination);
        let rh = announce::random_hash(&mut *self.rng, now.as_secs());
        let data = announce::build_payload(
            &identity,
            &name_hash,
            destination,
            &rh,
            ratchet.as_ref(),
            &app_data,
        );
        let mut flags = Flags::new(DestinationType::Single, PacketType::Announce);
        flags.context_flag = ratchet.is_some();
        let pkt = Packet {
            flags,
            hops: 0,
            transport_id: None,
            destination: *destination,
            context: if path_response {
                Context::PATH_RESPONSE
            } else {
                Context::NONE
            },
            data,
        };
        if pkt.len() > MTU {
            return Err(SendError::TooLarge(app_data.len()));
        }
        Ok(pkt)
    }

    /// Announce a local destination on every interface, with its default or the given app data.
    pub fn announce(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        app_data: Option<&[u8]>,
    ) -> Result<(), SendError> {
        let pkt = self.build_announce(now, destination, app_data, false)?;
        if self.interfaces.is_empty() {
            return Err(SendError::NoInterface);
        }
        self.route(now, pkt.to_bytes(), None);
        Ok(())
    }

    /// Announce a local destination on one interface only (a neighbour just connected).
    pub fn announce_on(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        interface: InterfaceId,
    ) -> Result<(), SendError> {
        let pkt = self.build_announce(now, destination, None, false)?;
        if !self.interfaces.contains_key(&interface) {
            return Err(SendError::NoInterface);
        }
        self.route(now, pkt.to_bytes(), Some(interface));
        Ok(())
    }

    /// Answer a path request for a local destination on the requesting interface.
    pub(crate) fn announce_path_response(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        tag: &[u8],
        iface: InterfaceId,
    ) {
        let reuse = self
            .destinations
            .get(destination)
            .and_then(|l| l.path_response.as_ref())
            .filter(|(t, _, at)| t == tag && now.saturating_since(*at) < super::PATH_RESPONSE_REUSE)
            .map(|(_, data, _)| data.clone());
        let pkt = match reuse {
            Some(data) => Packet {
                flags: {
                    let mut f = Flags::new(DestinationType::Single, PacketType::Announce);
                    f.context_flag = self
                        .destinations
                        .get(destination)
                        .is_some_and(|l| l.ratchets.is_some());
                    f
                },
                hops: 0,
                transport_id: None,
                destination: *destination,
                context: Context::PATH_RESPONSE,
                data,
            },
            None => match self.build_announce(now, destination, None, true) {
                Ok(p) => {
                    if let Some(l) = self.destinations.get_mut(destination) {
                        l.path_response = Some((tag.to_vec(), p.data.clone(), now));
                    }
                    p
                }
                Err(_) => return,
            },
        };
        self.route(now, pkt.to_bytes(), Some(iface));
    }

    /// Encrypt `plaintext` for a remote SINGLE destination and send it, expecting a proof.
    ///
    /// Returns the packet hash; a [`Event::Proof`] or [`Event::ReceiptTimeout`] follows.
    pub fn send_single(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        plaintext: &[u8],
    ) -> Result<[u8; FULL_HASH_LEN], SendError> {
        if plaintext.len() > ENCRYPTED_MDU {
            return Err(SendError::TooLarge(plaintext.len()));
        }
        let identity = self
            .recall_identity(destination)
            .ok_or(SendError::UnknownDestination(*destination))?;
        let ratchet = self.known.get(destination).and_then(|k| k.ratchet(now));
        let data = identity.encrypt(&mut *self.rng, plaintext, ratchet.as_ref());
        let pkt = Packet {
            flags: Flags::new(DestinationType::Single, PacketType::Data),
            hops: 0,
            transport_id: None,
            destination: *destination,
            context: Context::NONE,
            data,
        };
        if self.interfaces.is_empty() {
            return Err(SendError::NoInterface);
        }
        let hash = pkt.hash();
        let hops = self.paths.get(destination).map_or(1, |p| p.hops.max(1));
        let timeout = self.first_hop_timeout(destination) + PER_HOP_TIMEOUT * u32::from(hops);
        self.known.touch(now, destination);
        self.route(now, pkt.to_bytes(), None);
        if let Some(old) = self.receipts.push(Receipt {
            packet_hash: hash,
            destination: *destination,
            sent_at: now,
            deadline: now + timeout,
        }) {
            self.push_event(Event::ReceiptTimeout {
                packet_hash: old.packet_hash,
                destination: old.destination,
            });
        }
        Ok(hash)
    }

    /// Send `plaintext` to a PLAIN destination (unencrypted; neighbours one hop away).
    pub fn send_plain(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        plaintext: &[u8],
    ) -> Result<(), SendError> {
        self.send_nameless(now, destination, DestinationType::Plain, plaintext.to_vec())
    }

    /// Encrypt `plaintext` with a GROUP destination's `key` and send it (neighbours one
    /// hop away).
    pub fn send_group(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        key: &crate::destination::GroupKey,
        plaintext: &[u8],
    ) -> Result<(), SendError> {
        let data = key.encrypt(&mut *self.rng, plaintext);
        self.send_nameless(now, destination, DestinationType::Group, data)
    }

    fn send_nameless(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        kind: DestinationType,
        data: Vec<u8>,
    ) -> Result<(), SendError> {
        if data.len() > crate::packet::MDU {
            return Err(SendError::TooLarge(data.len()));
        }
        if self.interfaces.is_empty() {
            return Err(SendError::NoInterface);
        }
        let pkt = Packet {
            flags: Flags::new(kind, PacketType::Data),
            hops: 0,
            transport_id: None,
            destination: *destination,
            context: Context::NONE,
            data,
        };
        self.route(now, pkt.to_bytes(), None);
        Ok(())
    }

    /// Ask the network for a path to `destination` (on every interface, or just one).
    pub fn request_path(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        on: Option<InterfaceId>,
    ) {
        let tag = self.random_tag();
        self.send_path_request(now, destination, on, &tag);
    }

    pub(crate) fn send_path_request(
        &mut self,
        now: Instant,
        destination: &AddressHash,
        on: Option<InterfaceId>,
        tag: &[u8],
    ) {
        let req = crate::path_request::PathRequest {
            destination: *destination,
            requesting_transport: self.config.transport_enabled.then(|| self.identity.hash()),
            tag: tag.to_vec(),
        };
        let pkt = Packet {
            flags: Flags::new(DestinationType::Plain, PacketType::Data),
            hops: 0,
            transport_id: None,
            destination: self.pr_destination,
            context: Context::NONE,
            data: req.emit(),
        };
        self.path_requests.insert(*destination, now);
        self.route(now, pkt.to_bytes(), on);
    }

    /// Rebuild a stored announce as a HEADER_2 packet from this transport node.
    pub(crate) fn rebroadcast_packet(
        &self,
        destination: AddressHash,
        hops: u8,
        data: Vec<u8>,
        context_flag: bool,
        path_response: bool,
    ) -> Vec<u8> {
        let mut flags = Flags::new(DestinationType::Single, PacketType::Announce);
        flags.transport_type = TransportType::Transport;
        flags.context_flag = context_flag;
        Packet {
            flags,
            hops,
            transport_id: Some(self.identity.hash()),
            destination,
            context: if path_response {
                Context::PATH_RESPONSE
            } else {
                Context::NONE
            },
            data,
        }
        .to_bytes()
    }
}

/// Interface-mode rules for broadcasting an announce (RNS 1.5).
fn announce_allowed(to: InterfaceMode, local: bool, from: Option<InterfaceMode>) -> bool {
    use InterfaceMode::*;
    match to {
        AccessPoint => false,
        Roaming | Boundary if local => true,
        Roaming => !matches!(from, Some(Roaming) | Some(Boundary)),
        Boundary => !matches!(from, Some(Roaming)),
        Internal if !local => !matches!(from, Some(Boundary)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InterfaceMode::*;

    #[test]
    fn mode_rules() {
        assert!(!announce_allowed(AccessPoint, true, None));
        assert!(announce_allowed(Roaming, true, None));
        assert!(!announce_allowed(Roaming, false, Some(Roaming)));
        assert!(!announce_allowed(Roaming, false, Some(Boundary)));
        assert!(announce_allowed(Roaming, false, Some(Full)));
        assert!(!announce_allowed(Boundary, false, Some(Roaming)));
        assert!(announce_allowed(Boundary, false, Some(Boundary)));
        assert!(!announce_allowed(Internal, false, Some(Boundary)));
        assert!(announce_allowed(Full, false, Some(Roaming)));
    }
}
