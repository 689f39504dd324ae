//! Parsing and refusals of `config.toml`, section by section, and a property test that no
//! input makes the parser panic.

use super::*;
use proptest::prelude::*;

fn parse(t: &str) -> Result<Config, ConfigError> {
    Config::parse(t, Path::new("config.toml"))
}

#[test]
fn bundle_settings_are_checked() {
    let c = parse("[bundles]\ncustody = true\ncustody_peers = [\"0123456789abcdef0123456789abcdef\"]\nstore_limit_mb = 8\n").unwrap();
    assert!(c.bundles.custody);
    assert_eq!(c.bundles.custody_peers.len(), 1);
    assert_eq!(c.bundles.store_limit, 8 << 20);
    let e = parse("[bundles]\ncustody_peers = [\"xyz\"]\n").unwrap_err();
    assert_eq!(e.key, "bundles.custody_peers[0]");
    let e = parse("[bundles]\nstore_limit_mb = 0\n").unwrap_err();
    assert_eq!(e.key, "bundles.store_limit_mb");
    assert!(parse("[bundles]\ncustodian = true\n").is_err());
    let c = parse("[bundles]\nstranger_bundles = 10\nstranger_mb = 2\nstrangers_share = 0.5\nstranger_max_ttl = \"2h\"\n").unwrap();
    assert_eq!(c.bundles.strangers.bundles, 10);
    assert_eq!(c.bundles.strangers.bytes, 2 << 20);
    assert_eq!(c.bundles.strangers.share, 0.5);
    assert_eq!(c.bundles.strangers.max_ttl, Duration::from_secs(7200));
    for (text, key) in [
        ("stranger_bundles = 0", "bundles.stranger_bundles"),
        ("stranger_mb = 0", "bundles.stranger_mb"),
        ("strangers_share = 1.5", "bundles.strangers_share"),
        ("stranger_max_ttl = \"soon\"", "bundles.stranger_max_ttl"),
        ("stranger_max_ttl = \"5s\"", "bundles.stranger_max_ttl"),
    ] {
        let e = parse(&format!("[bundles]\n{text}\n")).unwrap_err();
        assert_eq!(e.key, key, "{text}");
    }
}

#[test]
fn default_config_is_valid() {
    let c = parse(DEFAULT_CONFIG).unwrap();
    assert!(!c.transport);
    assert_eq!(c.web, WebConfig::default());
    assert!(c.web.enabled);
    assert!(c.respond_to_probes);
    assert_eq!(c.announce_interval, Duration::from_secs(300));
    assert_eq!(c.interfaces.len(), 2);
    assert!(
        matches!(&c.interfaces[0].kind, InterfaceKind::Auto(a) if *a == grid_interfaces::auto::AutoConfig::default())
    );
    assert_eq!(c.interfaces[0].rns.hw_mtu, Some(1196));
    assert!(matches!(
        c.interfaces[1].kind,
        InterfaceKind::TcpServer { .. }
    ));
    assert!(c.share_instance);
    assert_eq!(c.instance_name, "default");
}

#[test]
fn shared_instance_keys() {
    let c = parse("[node]\nshare_instance = false\ninstance_name = \"lab-2\"\n[[interface]]\ntype = \"local\"\n[[interface]]\ntype = \"local\"\ninstance_name = \"other\"\n").unwrap();
    assert!(!c.share_instance);
    assert_eq!(c.instance_name, "lab-2");
    assert_eq!(
        c.interfaces[0].kind,
        InterfaceKind::Local {
            instance: "default".into()
        }
    );
    assert_eq!(c.interfaces[0].rns.local, LocalRole::Instance);
    assert_eq!(
        c.interfaces[1].kind,
        InterfaceKind::Local {
            instance: "other".into()
        }
    );
    for (text, key) in [
        ("[node]\ninstance_name = \"\"\n", "node.instance_name"),
        ("[node]\ninstance_name = \"a/b\"\n", "node.instance_name"),
        (
            "[[interface]]\ntype = \"local\"\ninstance_name = \"x y\"\n",
            "interface[0].instance_name",
        ),
    ] {
        assert_eq!(parse(text).unwrap_err().key, key, "{text}");
    }
    let a = Config::attached("lab-2");
    assert_eq!(a.interfaces.len(), 1);
    assert!(!a.share_instance && !a.transport);
}

#[test]
fn serial_and_kiss_interface_keys() {
    let c = parse("[[interface]]\ntype = \"serial\"\nport = \"/dev/ttyS0\"\nspeed = 115200\nparity = \"even\"\n[[interface]]\ntype = \"kiss\"\nport = \"/dev/ttyUSB1\"\npreamble = 150\nflow_control = true\n").unwrap();
    let InterfaceKind::Serial(s) = &c.interfaces[0].kind else {
        panic!("{:?}", c.interfaces[0].kind)
    };
    assert_eq!((s.speed, s.data_bits, s.stop_bits), (115_200, 8, 1));
    assert_eq!(s.parity, grid_interfaces::serial::Parity::Even);
    assert_eq!(c.interfaces[0].rns.bitrate, 115_200);
    assert_eq!(c.interfaces[0].rns.hw_mtu, Some(564));
    let InterfaceKind::Kiss(k) = &c.interfaces[1].kind else {
        panic!("{:?}", c.interfaces[1].kind)
    };
    assert_eq!(
        (k.preamble_ms, k.txtail_ms, k.persistence, k.flow_control),
        (150, 20, 64, true)
    );
    assert_eq!(k.serial.speed, 9600);
    assert_eq!(c.interfaces[1].rns.bitrate, 1200);
    for (text, key) in [
        ("type = \"serial\"\n", "port"),
        (
            "type = \"serial\"\nport = \"/d\"\ndatabits = 9\n",
            "databits",
        ),
        (
            "type = \"kiss\"\nport = \"/d\"\npreamble = 9000\n",
            "preamble",
        ),
    ] {
        let e = parse(&format!("[[interface]]\n{text}")).unwrap_err();
        assert_eq!(e.key, format!("interface[0].{key}"), "{text}");
    }
}

#[test]
fn rnode_interface_keys() {
    let c = parse("[[interface]]\ntype = \"rnode\"\nport = \"/dev/ttyUSB0\"\nfrequency = 868_100_000\nbandwidth = 125_000\nspreading_factor = 9\ncoding_rate = 5\ntx_power = 14\nairtime_limit = 0.01\nnetwork_name = \"n\"\n").unwrap();
    let InterfaceKind::Rnode(r) = &c.interfaces[0].kind else {
        panic!("{:?}", c.interfaces[0].kind)
    };
    assert_eq!(
        (
            r.frequency,
            r.bandwidth,
            r.spreading_factor,
            r.coding_rate,
            r.tx_power
        ),
        (868_100_000, 125_000, 9, 5, 14)
    );
    assert_eq!(r.lt_alock, Some(1.0));
    assert_eq!(c.interfaces[0].rns.bitrate, 1757);
    assert!(
        (c.interfaces[0].rns.announce_cap - 0.005).abs() < 1e-9,
        "half of the 1 % duty cycle"
    );
    assert_eq!(c.interfaces[0].rns.hw_mtu, Some(508));
    assert_eq!(
        c.interfaces[0].rns.ifac.as_ref().map(|i| i.size()),
        Some(8),
        "radios use 8-byte access codes"
    );
    let base = "[[interface]]\ntype = \"rnode\"\nport = \"/dev/x\"\nfrequency = 868100000\nbandwidth = 125000\nspreading_factor = 9\ncoding_rate = 5\n";
    for (extra, key) in [
        ("tx_power = 50\n", "tx_power"),
        ("airtime_limit = 2.0\n", "airtime_limit"),
    ] {
        assert_eq!(
            parse(&format!("{base}{extra}")).unwrap_err().key,
            format!("interface[0].{key}")
        );
    }
    let e = parse(&base.replace("spreading_factor = 9", "spreading_factor = 14")).unwrap_err();
    assert_eq!(e.key, "interface[0].spreading_factor");
    let e = parse(&base.replace("port = \"/dev/x\"\n", "")).unwrap_err();
    assert_eq!(e.key, "interface[0].port");
    let e = parse(&base.replace("frequency = 868100000", "frequency = 5000000000")).unwrap_err();
    assert_eq!(e.key, "interface[0].frequency");
}

#[test]
fn auto_interface_keys() {
    let c = parse(
        "[[interface]]\ntype = \"auto\"\ngroup_id = \"classroom\"\ndiscovery_scope = \"site\"\ndata_port = 5000\ndevices = [\"eth0\"]\n",
    )
    .unwrap();
    let InterfaceKind::Auto(a) = &c.interfaces[0].kind else {
        panic!("not auto");
    };
    assert_eq!(a.group_id, "classroom");
    assert_eq!(a.discovery_scope, grid_interfaces::auto::Scope::Site);
    assert_eq!(
        (a.data_port, &a.devices[..]),
        (5000, &["eth0".to_string()][..])
    );
    for (bad, key) in [
        ("discovery_scope = \"moon\"", "discovery_scope"),
        ("data_port = 29717", "data_port"),
        ("group_id = \"\"", "group_id"),
        ("multicast_address_type = \"x\"", "multicast_address_type"),
    ] {
        let e = parse(&format!("[[interface]]\ntype = \"auto\"\n{bad}\n")).unwrap_err();
        assert_eq!(e.key, format!("interface[0].{key}"), "{e}");
    }
}

#[test]
fn full_example() {
    let c = parse(
        r#"
        [node]
        transport = true
        announce_interval = "30s"
        [[interface]]
        type = "tcp_client"
        target = "127.0.0.1:4243"
        network_name = "testnet"
        passphrase = "secret"
        mode = "gateway"
        [[interface]]
        type = "udp"
        listen = "0.0.0.0:4242"
        forward = "255.255.255.255:4242"
        announce_cap = 5
        [[interface]]
        type = "tcp_server"
        listen = "127.0.0.1:1"
        enabled = false
        "#,
    )
    .unwrap();
    assert!(c.transport);
    assert_eq!(c.interfaces.len(), 2);
    assert_eq!(c.interfaces[0].rns.mode, InterfaceMode::Gateway);
    assert_eq!(c.interfaces[0].rns.ifac.as_ref().unwrap().size(), 16);
    assert!((c.interfaces[1].rns.announce_cap - 0.05).abs() < 1e-9);
}

#[test]
fn tcp_server_limits_have_defaults_and_are_checked() {
    use grid_interfaces::tcp::ServerLimits;
    let srv = "[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:1\"\n";
    let limits = |extra: &str| match parse(&format!("{srv}{extra}")).map(|c| c.interfaces) {
        Ok(i) => match &i[0].kind {
            InterfaceKind::TcpServer { limits, .. } => Ok(*limits),
            other => panic!("{other:?}"),
        },
        Err(e) => Err((e.key, e.reason)),
    };
    assert_eq!(limits(""), Ok(ServerLimits::default()));
    let l =
        limits("max_connections = 500\nmax_connections_per_ip = 500\nfirst_frame_timeout = \"3s\"")
            .unwrap();
    assert_eq!(
        (l.max_connections, l.max_per_ip, l.first_frame_timeout),
        (500, 500, Duration::from_secs(3))
    );
    // A small listener's per-address default follows its total.
    assert_eq!(limits("max_connections = 8").unwrap().max_per_ip, 8);
    for (extra, key) in [
        ("max_connections = 0", "max_connections"),
        ("max_connections = 100000", "max_connections"),
        (
            "max_connections = 8\nmax_connections_per_ip = 9",
            "max_connections_per_ip",
        ),
        ("max_connections_per_ip = 0", "max_connections_per_ip"),
        ("first_frame_timeout = \"soon\"", "first_frame_timeout"),
        ("first_frame_timeout = \"10ms\"", "first_frame_timeout"),
        ("first_frame_timeout = \"2h\"", "first_frame_timeout"),
    ] {
        let (k, reason) = limits(extra).unwrap_err();
        assert_eq!(k, format!("interface[0].{key}"), "{extra}: {reason}");
    }
    let e = parse("[[interface]]\ntype = \"tcp_client\"\ntarget = \"h:1\"\nmax_connections = 4")
        .unwrap_err();
    assert_eq!(e.key, "interface[0].max_connections");
    assert!(e.reason.contains("tcp_server"), "{}", e.reason);
}

#[test]
fn errors_name_file_key_and_reason() {
    let cases = [
        (
            "[node]\nannounce_interval = \"soon\"",
            "node.announce_interval",
        ),
        (
            "[[interface]]\ntype = \"tcp_server\"",
            "interface[0].listen",
        ),
        (
            "[[interface]]\ntype = \"tcp_server\"\nlisten = \"nope\"",
            "interface[0].listen",
        ),
        (
            "[[interface]]\ntype = \"carrier_pigeon\"",
            "interface[0].type",
        ),
        (
            "[[interface]]\ntype = \"kiss\"\nport = \"/dev/x\"\nparity = \"mark\"",
            "interface[0].parity",
        ),
        (
            "[[interface]]\ntype = \"rnode\"\nport = \"/dev/x\"",
            "interface[0].frequency",
        ),
        (
            "[[interface]]\ntype = \"udp\"\nlisten = \"0.0.0.0:1\"\nforward = \"x\"",
            "interface[0].forward",
        ),
        (
            "[[interface]]\ntype = \"tcp_client\"\ntarget = \"h:1\"\nifac_size = 12",
            "interface[0].ifac_size",
        ),
        (
            "[[interface]]\ntype = \"tcp_client\"\ntarget = \"h:1\"\nmode = \"warp\"",
            "interface[0].mode",
        ),
    ];
    for (text, key) in cases {
        let e = parse(text).unwrap_err();
        assert_eq!(e.key, key, "{text}");
        assert_eq!(e.file, Path::new("config.toml"));
        assert!(!e.reason.is_empty());
        assert!(e.to_string().starts_with("config.toml: "));
    }
    let e = parse("[node]\ntransport = 3\n").unwrap_err();
    assert_eq!(e.key, "line 2");
    let e = parse("[node]\nbogus = 1\n").unwrap_err();
    assert!(e.reason.contains("bogus"), "{}", e.reason);
}

#[test]
fn the_status_page_is_loopback_only() {
    let c = parse("[web]\nlisten = \"[::1]:9000\"\n").unwrap();
    assert_eq!(c.web.listen.port(), 9000);
    let c = parse("[web]\nenabled = false\n").unwrap();
    assert!(!c.web.enabled);
    let e = parse("[web]\nlisten = \"0.0.0.0:4280\"\n").unwrap_err();
    assert_eq!(e.key, "web.listen");
    assert!(e.reason.contains("not a loopback address"), "{}", e.reason);
    let e = parse("[web]\nlisten = \"here\"\n").unwrap_err();
    assert!(e.reason.contains("not an address"), "{}", e.reason);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
        let _ = parse(&s);
    }

    #[test]
    fn mutated_default_never_panics(i in 0usize..600, b in any::<u8>()) {
        let mut bytes = DEFAULT_CONFIG.as_bytes().to_vec();
        let i = i % bytes.len();
        bytes[i] = b;
        if let Ok(s) = String::from_utf8(bytes) {
            let _ = parse(&s);
        }
    }
}
