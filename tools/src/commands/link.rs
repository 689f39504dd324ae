//! `grid link …`: open links and use them (packets, requests, channel, streams).

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use grid::control::response as r;
use grid::control::{Payload, Request};
use grid::state::StateDir;
use serde_json::Value;

use super::{ask, parse_hash, timeout_ms};

/// `grid link ...`
pub(crate) fn link(state: &StateDir, action: LinkAction) -> Result<()> {
    use LinkAction as A;
    let quick = Duration::from_secs(5);
    let (req, wait, json_out) = match &action {
        A::Open {
            hash,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            let d = parse_hash(hash)?;
            (
                Request::LinkOpen {
                    destination: d,
                    timeout_ms: Some(ms),
                },
                Duration::from_millis(ms) + quick,
                *json,
            )
        }
        A::List { json } => (Request::Links, quick, *json),
        A::Send {
            link,
            text,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            (
                Request::LinkSend {
                    link: parse_hash(link)?,
                    payload: Payload::text(text.clone()),
                    timeout_ms: Some(ms),
                },
                Duration::from_millis(ms) + quick,
                *json,
            )
        }
        A::Request {
            link,
            path,
            data,
            file,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            let mut payload = Payload::text(data.clone().unwrap_or_default());
            if let Some(f) = file {
                let abs = std::path::absolute(f).map_err(|e| anyhow!("{}: {e}", f.display()))?;
                payload.file = Some(abs);
            }
            let req = Request::LinkRequest {
                link: parse_hash(link)?,
                path: path.clone(),
                payload,
                timeout_ms: Some(ms),
            };
            (req, Duration::from_millis(ms) + quick, *json)
        }
        A::Channel {
            link,
            text,
            msgtype,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            (
                Request::LinkChannel {
                    link: parse_hash(link)?,
                    msgtype: *msgtype,
                    payload: Payload::text(text.clone()),
                    timeout_ms: Some(ms),
                },
                Duration::from_millis(ms) + quick,
                *json,
            )
        }
        A::Stream {
            link,
            file,
            text,
            stream_id,
            eof,
            timeout,
            json,
        } => {
            let ms = timeout_ms(*timeout)?;
            let payload = match file {
                Some(f) => Payload::file(
                    std::path::absolute(f).with_context(|| format!("{}", f.display()))?,
                ),
                None => Payload::text(text.clone().unwrap_or_default()),
            };
            let req = Request::LinkStream {
                link: parse_hash(link)?,
                stream_id: *stream_id,
                payload,
                eof: *eof,
                timeout_ms: Some(ms),
            };
            (req, Duration::from_millis(ms) + quick, *json)
        }
        A::Recv { link, json } => (
            Request::LinkRecv {
                link: parse_hash(link)?,
            },
            quick,
            *json,
        ),
        A::Identify { link, json } => (
            Request::LinkIdentify {
                link: parse_hash(link)?,
            },
            quick,
            *json,
        ),
        A::Close { link, json } => (
            Request::LinkClose {
                link: parse_hash(link)?,
            },
            quick,
            *json,
        ),
    };
    let v = ask(state, &req, wait)?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let text = |p: &Value| match p {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    match action {
        A::Open { .. } => {
            let up: r::LinkUp = r::parse(v)?;
            println!(
                "Link {} established, RTT {:.3} ms, MTU {}",
                up.link, up.rtt_ms, up.mtu
            )
        }
        A::List { .. } => {
            for l in r::parse::<r::Links>(v)?.links {
                println!(
                    "{}  {:<9} {} {}  mtu {}  rtt {}",
                    l.link,
                    l.state,
                    if l.initiator { "to" } else { "from" },
                    l.destination,
                    l.mtu,
                    l.rtt_ms.map_or("-".into(), |r| format!("{r:.3} ms")),
                );
            }
        }
        A::Send { .. } => {
            let p: r::Proven = r::parse(v)?;
            println!("Delivered on {}, proof after {:.3} ms", p.link, p.rtt_ms)
        }
        A::Request { .. } => println!("{}", text(&r::parse::<r::Answered>(v)?.response)),
        A::Channel { .. } => {
            let d: r::Delivered = r::parse(v)?;
            println!("Delivered message {} on {}", d.sequence, d.link)
        }
        A::Stream { .. } => {
            let d: r::StreamDelivered = r::parse(v)?;
            println!(
                "Delivered {} bytes on stream {} of {}",
                d.bytes, d.stream_id, d.link
            )
        }
        A::Recv { .. } => {
            let inbox: r::Inbox = r::parse(v)?;
            for p in &inbox.packets {
                println!("{}", text(p));
            }
            for m in &inbox.messages {
                println!("[message {:#06x}] {}", m.msgtype, text(&m.data));
            }
            for st in &inbox.streams {
                println!(
                    "[stream {}{}] {}",
                    st.stream_id,
                    if st.eof { ", closed" } else { "" },
                    text(&st.data)
                );
            }
        }
        A::Identify { .. } => {
            let id: r::Identified = r::parse(v)?;
            println!("Identified as {} on {}", id.identity, id.link)
        }
        A::Close { .. } => println!("Closed {}", r::parse::<r::Done>(v)?.link),
    }
    Ok(())
}

/// What to do with links.
#[derive(Subcommand, Debug)]
pub(crate) enum LinkAction {
    /// Open a link to a destination; print the link id, RTT and MTU.
    Open {
        /// Destination hash (32 hex characters).
        hash: String,
        /// Seconds to wait for a path and the link.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List this node's links.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a text packet on a link and wait for the peer's proof.
    Send {
        /// Link id.
        link: String,
        /// Text to send.
        text: String,
        /// Seconds to wait for the proof.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a request and print the response.
    Request {
        /// Link id.
        link: String,
        /// Request path, e.g. /ping.
        path: String,
        /// Request data (text).
        data: Option<String>,
        /// Send this file's contents as the request data instead (up to 16 MiB; more
        /// than one packet goes as resource segments).
        #[arg(long, conflicts_with = "data")]
        file: Option<std::path::PathBuf>,
        /// Seconds to wait for the response.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a channel message (reliable, ordered; retransmitted until proven).
    Channel {
        /// Link id.
        link: String,
        /// Message text.
        text: String,
        /// Message type (below 0xF000; RNS peers must have registered it).
        #[arg(long, default_value_t = 0x0101)]
        msgtype: u16,
        /// Seconds to wait for delivery.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a file (or text) to a stream on the link's channel, like an RNS Buffer.
    Stream {
        /// Link id.
        link: String,
        /// File to send (at most 16 MiB; use `grid cp` for big files).
        #[arg(long, conflicts_with = "text")]
        file: Option<std::path::PathBuf>,
        /// Text to send.
        #[arg(long)]
        text: Option<String>,
        /// Stream id (0–16383).
        #[arg(long, default_value_t = 0)]
        stream_id: u16,
        /// Close the stream after this data.
        #[arg(long)]
        eof: bool,
        /// Seconds to wait for delivery.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print what arrived on a link since the last time: packets, channel messages, stream data.
    Recv {
        /// Link id.
        link: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reveal this node's identity to the other end (links this node opened).
    Identify {
        /// Link id.
        link: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Close a link.
    Close {
        /// Link id.
        link: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
