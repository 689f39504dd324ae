//! The last hour of each radio interface's airtime and channel load, for the page's
//! chart: one sample per [`EVERY`], at most [`SAMPLES`] per interface, at most
//! [`INTERFACES`] interfaces (the oldest-sampled goes first).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

/// How often the node's radio figures are sampled.
pub(crate) const EVERY: Duration = Duration::from_secs(10);
/// Samples kept per interface: an hour.
pub(crate) const SAMPLES: usize = 360;
/// Radio interfaces kept.
pub(crate) const INTERFACES: usize = 16;

/// One sample: seconds since the page's server started, airtime % and channel load %
/// over the radio's short window (15 s).
type Sample = (u64, f32, f32);

/// Samples by interface name.
#[derive(Debug, Default)]
pub(crate) struct Airtime {
    by_interface: BTreeMap<String, VecDeque<Sample>>,
}

impl Airtime {
    /// Add the radio figures of a `status` answer taken at `t` seconds.
    pub(crate) fn add(&mut self, t: u64, status: &Value) {
        for i in status["interfaces"].as_array().into_iter().flatten() {
            let radio = &i["radio"];
            let (Some(name), Some(air)) = (i["name"].as_str(), radio["airtime_short_pct"].as_f64())
            else {
                continue;
            };
            let load = radio["channel_load_short_pct"].as_f64().unwrap_or(0.0);
            if !self.by_interface.contains_key(name) && self.by_interface.len() >= INTERFACES {
                let oldest = self
                    .by_interface
                    .iter()
                    .min_by_key(|(_, s)| s.back().map_or(0, |x| x.0))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.by_interface.remove(&k);
                }
            }
            let s = self.by_interface.entry(name.to_string()).or_default();
            if s.len() >= SAMPLES {
                s.pop_front();
            }
            s.push_back((t, air as f32, load as f32));
        }
    }

    /// `{"<interface>": [[t, airtime %, channel load %], …]}`.
    pub(crate) fn to_json(&self) -> Value {
        Value::Object(
            self.by_interface
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!(v
                            .iter()
                            .map(|s| [s.0 as f64, f64::from(s.1), f64::from(s.2)])
                            .collect::<Vec<_>>()),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_an_hour_per_radio_and_ignores_other_interfaces() {
        let mut a = Airtime::default();
        for t in 0..(SAMPLES as u64 + 10) {
            a.add(
                t * 10,
                &json!({"interfaces": [
                    {"name": "lora", "radio": {"airtime_short_pct": 1.5, "channel_load_short_pct": 3.0}},
                    {"name": "tcp", "radio": null}
                ]}),
            );
        }
        let j = a.to_json();
        let lora = j["lora"].as_array().unwrap();
        assert_eq!(lora.len(), SAMPLES);
        assert_eq!(lora[0][0], 100.0, "the oldest were dropped");
        assert_eq!(lora[0][1], 1.5);
        assert!(j.get("tcp").is_none());
    }

    #[test]
    fn at_most_a_bounded_number_of_interfaces() {
        let mut a = Airtime::default();
        for n in 0..(INTERFACES as u64 + 5) {
            a.add(
                n,
                &json!({"interfaces": [{"name": format!("r{n}"), "radio": {"airtime_short_pct": 1.0}}]}),
            );
        }
        let j = a.to_json();
        assert_eq!(j.as_object().unwrap().len(), INTERFACES);
        assert!(j.get("r0").is_none() && j.get(format!("r{}", INTERFACES + 4)).is_some());
    }
}
