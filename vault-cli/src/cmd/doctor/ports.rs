//! Checklist "firewall/ports": torch.distributed's rendezvous ports (29500,
//! the elastic 29400, and `$MASTER_PORT`) listening on a non-loopback
//! address (`/proc/net/tcp{,6}`), and whether nftables or iptables rules
//! restrict who may connect. An open port gets a rule template for the
//! training peers (`--peer`) in a table of its own, deleted after the job.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::probe::Probe;
use super::{Check, Host, Status, check};

/// torch.distributed's default TCPStore port and the elastic rendezvous port.
pub const TRAINING_PORTS: [u16; 2] = [29500, 29400];

/// A TCP socket in LISTEN state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6`: listening sockets only.
pub fn listeners(table: &str) -> Vec<Listener> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let (addr, port) = fields.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(Listener {
                addr: parse_addr(addr)?,
                port,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address as a native integer.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// What the firewall rules say about one port.
#[derive(Debug, PartialEq, Eq)]
pub enum Firewall {
    /// Accepted only from given sources.
    Restricted,
    /// Dropped (a rule for the port or a drop policy on input).
    Closed,
    /// Accepted from anywhere; the reason.
    Open(String),
    /// No rules could be read; why.
    Unknown(String),
}

/// Whether `line` names `port` as a destination port (`dport 29500`,
/// `dport { 22, 29500 }`, `--dport 29500`, `--dports 22,29500`).
fn names_port(line: &str, port: u16) -> bool {
    let Some(at) = line.find("dport") else {
        return false;
    };
    let rest = &line[at..];
    let rest = rest.split_once(' ').map_or("", |(_, r)| r.trim_start());
    let spec = if let Some(set) = rest.strip_prefix('{') {
        set.split('}').next().unwrap_or("")
    } else {
        rest.split_whitespace().next().unwrap_or("")
    };
    spec.split([',', ' ']).any(|p| {
        let p = p.trim();
        match p.split_once(['-', ':']) {
            Some((lo, hi)) => matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&port)),
            None => p.parse() == Ok(port),
        }
    })
}

/// Reads nftables (`nft list ruleset`) and iptables (`iptables-save`,
/// `ip6tables-save`) output for rules about `port`.
pub fn firewall(port: u16, rulesets: &[(&str, &Probe)]) -> Firewall {
    let texts: Vec<&str> = rulesets.iter().filter_map(|(_, p)| p.output()).collect();
    if texts.is_empty() {
        let why: Vec<String> = rulesets
            .iter()
            .map(|(name, p)| match p {
                Probe::Missing => format!("{name}: not installed"),
                Probe::Failed(e) => format!("{name}: {e}"),
                Probe::Output(_) => format!("{name}: no rules"),
            })
            .collect();
        return Firewall::Unknown(why.join("; "));
    }
    let (mut restricted, mut closed, mut open) = (false, false, None);
    for line in texts.iter().flat_map(|t| t.lines()) {
        let line = line.trim();
        let input_policy_drop = (line.starts_with(":INPUT DROP")
            || line.starts_with(":INPUT REJECT"))
            || (line.contains("hook input") && line.contains("policy drop"));
        closed |= input_policy_drop;
        if !names_port(line, port) {
            continue;
        }
        let accepts =
            line.ends_with("accept") || line.contains("-j ACCEPT") || line.contains(" accept ");
        let drops = ["drop", "reject", "-j DROP", "-j REJECT"]
            .iter()
            .any(|w| line.contains(w));
        let sourced =
            line.contains("saddr") || line.contains(" -s ") || line.contains("--src-range");
        if accepts && sourced {
            restricted = true;
        } else if accepts {
            open.get_or_insert_with(|| format!("a rule accepts it from anywhere: `{line}`"));
        } else if drops && !sourced {
            closed = true;
        }
    }
    match (open, restricted, closed) {
        (Some(why), _, _) => Firewall::Open(why),
        (None, true, _) => Firewall::Restricted,
        (None, false, true) => Firewall::Closed,
        (None, false, false) => Firewall::Open("no rule restricts it and input is accepted".into()),
    }
}

/// nftables commands that admit only `peers` to `port`, in a table of
/// their own so that one command clears them after the job.
pub fn rule_template(port: u16, peers: &[String]) -> String {
    let (v6, v4): (Vec<&String>, Vec<&String>) = peers.iter().partition(|p| p.contains(':'));
    let mut cmds = vec![
        "nft add table inet torchjob".to_string(),
        "nft add chain inet torchjob input '{ type filter hook input priority 0; }'".to_string(),
    ];
    let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if peers.is_empty() {
        cmds.push(format!(
            "nft add rule inet torchjob input tcp dport {port} ip saddr {{ PEER1, PEER2 }} accept"
        ));
    }
    if !v4.is_empty() {
        cmds.push(format!(
            "nft add rule inet torchjob input tcp dport {port} ip saddr {{ {} }} accept",
            list(&v4)
        ));
    }
    if !v6.is_empty() {
        cmds.push(format!(
            "nft add rule inet torchjob input tcp dport {port} ip6 saddr {{ {} }} accept",
            list(&v6)
        ));
    }
    cmds.push(format!(
        "nft add rule inet torchjob input tcp dport {port} drop"
    ));
    let mut text = format!(
        "{}; after the job: nft delete table inet torchjob",
        cmds.join("; ")
    );
    if peers.is_empty() {
        text.push_str(" (give --peer ADDR for each training node to fill in PEER1, PEER2)");
    }
    text
}

/// One row for `port`.
pub fn port_check(port: u16, found: &[Listener], fw: &Firewall, peers: &[String]) -> Check {
    let name = format!("port {port}");
    let exposed: Vec<String> = found
        .iter()
        .filter(|l| l.port == port && !is_loopback(l.addr))
        .map(|l| match l.addr {
            IpAddr::V6(a) => format!("[{a}]:{port}"),
            a => format!("{a}:{port}"),
        })
        .collect();
    if exposed.is_empty() {
        let local = found.iter().any(|l| l.port == port);
        let what = if local {
            "listening on loopback only"
        } else {
            "no listener"
        };
        return check(
            name,
            Status::Ok,
            format!("{what} (open it only to the training nodes while a job runs)"),
        );
    }
    let at = exposed.join(", ");
    match fw {
        Firewall::Restricted => check(name, Status::Ok, format!("listening on {at}; a firewall rule admits only given sources")),
        Firewall::Closed => check(name, Status::Ok, format!("listening on {at}; the firewall drops it")),
        Firewall::Open(why) => check(
            name,
            Status::Warn,
            format!("listening on {at} and open to any host: {why}; anyone who reaches it can join or disrupt the job (torch.distributed does not authenticate)"),
        )
        .fix(rule_template(port, peers)),
        Firewall::Unknown(why) => check(
            name,
            Status::Warn,
            format!("listening on {at}; cannot tell whether a firewall restricts it ({why})"),
        )
        .fix(rule_template(port, peers)),
    }
}

/// The ports to look at: the defaults and `$MASTER_PORT`.
pub fn ports(master_port: Option<&str>) -> Vec<u16> {
    let mut ports = TRAINING_PORTS.to_vec();
    if let Some(p) = master_port.and_then(|p| p.trim().parse().ok())
        && !ports.contains(&p)
    {
        ports.push(p);
    }
    ports
}

/// Reads /proc/net/tcp{,6} and the firewall rules; one row per port.
pub fn checks(host: &Host, peers: &[String]) -> Vec<Check> {
    let found: Vec<Listener> = ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|f| fs::read_to_string(host.proc.join(f)).ok())
        .flat_map(|t| listeners(&t))
        .collect();
    let master = std::env::var("MASTER_PORT").ok();
    let ports = ports(master.as_deref());
    let exposed = found
        .iter()
        .any(|l| ports.contains(&l.port) && !is_loopback(l.addr));
    // Rules are read only when they matter (iptables-save needs root).
    let rules = if exposed {
        vec![
            (
                "nft list ruleset",
                super::probe::run("nft", &["list", "ruleset"]),
            ),
            ("iptables-save", super::probe::run("iptables-save", &[])),
            ("ip6tables-save", super::probe::run("ip6tables-save", &[])),
        ]
    } else {
        Vec::new()
    };
    let rules: Vec<(&str, &Probe)> = rules.iter().map(|(n, p)| (*n, p)).collect();
    ports
        .into_iter()
        .map(|port| port_check(port, &found, &firewall(port, &rules), peers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 0.0.0.0:29500 and 127.0.0.1:29400 listening; a connection to 443.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
       0: 00000000:733C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 175 1\n\
       1: 0100007F:72D8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 176 1\n\
       2: 020200C0:8F3A 507100CB:01BB 01 00000000:00000000 00:00000000 00000000     0        0 824 1\n";
    // [::]:29400 listening.
    const TCP6: &str = "  sl  local_address remote_address st\n\
       0: 00000000000000000000000000000000:72D8 00000000000000000000000000000000:0000 0A 00000000:00000000\n\
       1: 00000000000000000000000001000000:733C 00000000000000000000000000000000:0000 0A 00000000:00000000\n";

    #[cfg(target_endian = "little")]
    #[test]
    fn proc_net_tcp_is_parsed() {
        let l = listeners(TCP);
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            Listener {
                addr: "0.0.0.0".parse().unwrap(),
                port: 29500
            }
        );
        assert_eq!(
            l[1],
            Listener {
                addr: "127.0.0.1".parse().unwrap(),
                port: 29400
            }
        );
        let l6 = listeners(TCP6);
        assert_eq!(
            l6[0],
            Listener {
                addr: "::".parse().unwrap(),
                port: 29400
            }
        );
        assert_eq!(
            l6[1],
            Listener {
                addr: "::1".parse().unwrap(),
                port: 29500
            }
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn open_ports_warn_with_a_template_for_the_peers() {
        let found = listeners(TCP);
        let none = Firewall::Unknown("nft: not installed".into());
        let peers = vec!["10.0.0.2".to_string(), "fd00::3".to_string()];
        let c = port_check(29500, &found, &none, &peers);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("0.0.0.0:29500"), "{c:?}");
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("tcp dport 29500 ip saddr { 10.0.0.2 } accept"),
            "{fix}"
        );
        assert!(fix.contains("ip6 saddr { fd00::3 }"), "{fix}");
        assert!(fix.contains("nft delete table inet torchjob"), "{fix}");
        // Loopback only, or nothing: fine.
        assert_eq!(port_check(29400, &found, &none, &[]).status, Status::Ok);
        assert_eq!(port_check(1234, &found, &none, &[]).status, Status::Ok);
        assert_eq!(
            port_check(29500, &found, &Firewall::Restricted, &[]).status,
            Status::Ok
        );
        assert!(rule_template(29500, &[]).contains("PEER1"));
    }

    #[test]
    fn firewall_rules_are_read() {
        let nft = |t: &str| Probe::Output(t.to_string());
        let restricted = nft(
            "table inet filter {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport { 22, 29500 } ip saddr 10.0.0.0/24 accept\n  tcp dport 29500 drop\n }\n}\n",
        );
        assert_eq!(
            firewall(29500, &[("nft", &restricted)]),
            Firewall::Restricted
        );
        let open = nft("tcp dport 29400-29600 accept\n");
        assert!(matches!(
            firewall(29500, &[("nft", &open)]),
            Firewall::Open(_)
        ));
        let policy = nft("chain input { type filter hook input priority filter; policy drop; }\n");
        assert_eq!(firewall(29500, &[("nft", &policy)]), Firewall::Closed);
        let ipt = nft(
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.2/32 -p tcp -m tcp --dport 29500 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 29500 -j DROP\n",
        );
        assert_eq!(
            firewall(29500, &[("iptables-save", &ipt)]),
            Firewall::Restricted
        );
        let multi = nft("-A INPUT -p tcp -m multiport --dports 22,29500 -j ACCEPT\n");
        assert!(matches!(
            firewall(29500, &[("iptables-save", &multi)]),
            Firewall::Open(_)
        ));
        let empty = nft(":INPUT ACCEPT [0:0]\n");
        assert!(matches!(
            firewall(29500, &[("iptables-save", &empty)]),
            Firewall::Open(_)
        ));
        let missing = firewall(
            29500,
            &[
                ("nft", &Probe::Missing),
                ("iptables-save", &Probe::Failed("Permission denied".into())),
            ],
        );
        assert!(matches!(missing, Firewall::Unknown(why) if why.contains("Permission denied")));
    }

    #[test]
    fn master_port_is_added() {
        assert_eq!(ports(Some("12355")), [29500, 29400, 12355]);
        assert_eq!(ports(Some("29500")), [29500, 29400]);
        assert_eq!(ports(Some("x")), [29500, 29400]);
    }
}
