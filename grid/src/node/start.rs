//! Starting a node's interfaces: the shared instance for programs on the host, and every
//! interface in `config.toml`, with what each is for `status`.

use grid_interfaces::{local, tcp, udp, Hub};
use tokio::task::JoinSet;

use rns_core::transport::{InterfaceConfig, LocalRole};

use super::{interfaces, NodeError};
use crate::config::{Config, InterfaceKind};
use crate::control::response;

/// Become the host's shared instance `instance` unless another node (Grid or `rnsd`)
/// already is; returns whether this node serves it.
pub(super) fn serve_shared_instance(instance: &str, hub: &Hub, tasks: &mut JoinSet<()>) -> bool {
    match local::bind(instance) {
        Ok(listener) => {
            tasks.spawn(local::run_server(
                hub.clone(),
                listener,
                InterfaceConfig::local("shared instance", LocalRole::Client),
            ));
            tracing::info!(
                instance,
                "serving the shared instance for programs on this host"
            );
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!(
                instance,
                "another node serves the shared instance on this host; running on our own \
                 (set node.instance_name to share this one under another name)"
            );
            false
        }
        Err(e) => {
            tracing::warn!(instance, error = %e, "cannot serve the shared instance; running on our own");
            false
        }
    }
}

/// Start every configured interface; what each is, for `status`.
pub(super) async fn start_interfaces(
    config: &Config,
    hub: &Hub,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<response::ConfiguredInterface>, NodeError> {
    let mut configured = Vec::with_capacity(config.interfaces.len());
    for spec in &config.interfaces {
        let mut entry = interfaces::describe(spec);
        let name = spec.rns.name.clone();
        let fail = |reason: String| NodeError::Interface {
            name: name.clone(),
            reason,
        };
        match &spec.kind {
            InterfaceKind::TcpServer { listen, limits } => {
                let l = tcp::bind_server(listen)
                    .await
                    .map_err(|e| fail(format!("cannot listen on {listen}: {e}")))?;
                if let Ok(a) = l.local_addr() {
                    entry.address = a.to_string();
                }
                tasks.spawn(tcp::run_server(hub.clone(), l, spec.rns.clone(), *limits));
            }
            InterfaceKind::TcpClient { target } => {
                tasks.spawn(tcp::run_client(
                    hub.clone(),
                    target.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Auto(auto) => {
                tasks.spawn(grid_interfaces::auto::run(
                    hub.clone(),
                    auto.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Serial(serial) => {
                tasks.spawn(grid_interfaces::serial::run(
                    hub.clone(),
                    serial.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Kiss(kiss) => {
                tasks.spawn(grid_interfaces::kiss_tnc::run(
                    hub.clone(),
                    kiss.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Rnode(radio) => {
                tasks.spawn(grid_interfaces::rnode::run(
                    hub.clone(),
                    radio.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Local { instance } => {
                tasks.spawn(local::run_client(
                    hub.clone(),
                    instance.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Udp { listen, forward } => {
                let s = udp::bind(listen)
                    .await
                    .map_err(|e| fail(format!("cannot bind {listen}: {e}")))?;
                if let Ok(a) = s.local_addr() {
                    entry.address = format!("{a} → {forward}");
                }
                tasks.spawn(udp::run(hub.clone(), s, *forward, spec.rns.clone()));
            }
        }
        configured.push(entry);
    }
    Ok(configured)
}
