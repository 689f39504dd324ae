//! Requests and responses on a link (RNS `Link.request`), and identifying the initiator.

use rand_core::CryptoRngCore;

use super::*;

impl Link {
    /// Send a request; returns its id. A [`LinkEvent::Response`] or [`LinkEvent::RequestTimeout`] follows.
    pub fn request(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        path: &str,
        data: &rmpv::Value,
        timeout: Option<Duration>,
    ) -> Result<AddressHash, LinkError> {
        self.require_active()?;
        if self.requests.len() >= MAX_REQUESTS {
            return Err(LinkError::Busy(self.id));
        }
        let body = wire::encode_request(now.as_secs_f64(), &wire::path_hash(path), data);
        let timeout = timeout.unwrap_or_else(|| {
            self.rtt.unwrap_or_default() * TRAFFIC_TIMEOUT_FACTOR + RESPONSE_GRACE
        });
        if body.len() > self.mdu() {
            // Too big for one packet: a resource, identified by the body's hash.
            let id = crate::hash::truncated_hash(&body);
            self.request_as_resource(rng, now, &body, false, id)?;
            self.requests.insert(id, now + timeout);
            return Ok(id);
        }
        let ct = self
            .encrypt(rng, &body)
            .ok_or(LinkError::NotActive(self.id))?;
        let raw = link_packet(&self.id, PacketType::Data, Context::REQUEST, ct);
        let id = crate::packet::PacketView::new_checked(&raw[..])
            .expect("well-formed")
            .truncated_hash();
        self.requests.insert(id, now + timeout);
        self.push_out(raw, now);
        Ok(id)
    }

    /// Answer a request received on this link.
    pub fn respond(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        request_id: &AddressHash,
        response: &rmpv::Value,
    ) -> Result<(), LinkError> {
        self.require_active()?;
        let body = wire::encode_response(request_id, response);
        if body.len() > self.mdu() {
            return self.request_as_resource(rng, now, &body, true, *request_id);
        }
        let ct = self
            .encrypt(rng, &body)
            .ok_or(LinkError::NotActive(self.id))?;
        self.push_out(
            link_packet(&self.id, PacketType::Data, Context::RESPONSE, ct),
            now,
        );
        Ok(())
    }

    /// Reveal our identity to the responder (initiator only).
    pub fn identify(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        identity: &Identity,
    ) -> Result<(), LinkError> {
        if !self.initiator {
            return Err(LinkError::NotInitiator);
        }
        self.require_active()?;
        let mut signed = self.id.0.to_vec();
        signed.extend_from_slice(identity.public().as_bytes());
        let mut body = identity.public().as_bytes().to_vec();
        body.extend_from_slice(&identity.sign(&signed));
        let ct = self
            .encrypt(rng, &body)
            .ok_or(LinkError::NotActive(self.id))?;
        self.push_out(
            link_packet(&self.id, PacketType::Data, Context::LINKIDENTIFY, ct),
            now,
        );
        Ok(())
    }
}
