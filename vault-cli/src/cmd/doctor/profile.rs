//! `doctor --profile pytorch-host`: the checks grouped under the six
//! headings of the Debian hardening checklist for PyTorch hosts, in its
//! order, so the report reads as the team's checklist. Checks about mvault's
//! own prerequisites (FUSE) come last, under their own heading.

use super::{Check, Status};

/// The checklist's headings, in order.
pub const HEADINGS: [&str; 6] = [
    "1. updates",
    "2. SSH",
    "3. firewall/ports",
    "4. not root",
    "5. files & monitoring/audit",
    "6. confinement & disk encryption",
];

/// Where checks that are not on the checklist go.
pub const MVAULT: &str = "mvault itself";

/// The heading a check belongs under, by its name.
pub fn heading_of(check: &str) -> &'static str {
    let first = check.split(' ').next().unwrap_or("");
    match first {
        "unattended-upgrades" | "security" => HEADINGS[0],
        "ssh" => HEADINGS[1],
        "port" => HEADINGS[2],
        "user" => HEADINGS[3],
        "identity" | "model" | "leftovers" | "auditd" => HEADINGS[4],
        "apparmor" | "selinux" | "python" | "ptrace" | "core" | "fuse.conf" | "storage"
        | "swap" => HEADINGS[5],
        _ => MVAULT,
    }
}

/// Sets each check's heading and orders the checks by heading (stable).
pub fn group(checks: &mut [Check]) {
    for c in checks.iter_mut() {
        c.heading = Some(heading_of(&c.check));
    }
    let rank = |h: Option<&str>| {
        HEADINGS
            .iter()
            .position(|x| Some(*x) == h)
            .unwrap_or(HEADINGS.len())
    };
    checks.sort_by_key(|c| rank(c.heading));
}

/// The human report: per heading, its verdict and then its rows.
pub fn print(checks: &[Check]) {
    let width = checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut current = None;
    for c in checks {
        if current != c.heading {
            current = c.heading;
            let worst = checks
                .iter()
                .filter(|o| o.heading == c.heading)
                .map(|o| o.status)
                .max()
                .unwrap_or(Status::Ok);
            if current != checks.first().and_then(|f| f.heading) {
                println!();
            }
            println!("[{:<4}] {}", worst.label(), c.heading.unwrap_or(MVAULT));
        }
        super::print_row(c, width);
    }
    super::print_totals(checks);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_name_has_its_heading() {
        let names = [
            ("unattended-upgrades", 0),
            ("security updates", 0),
            ("ssh root login", 1),
            ("ssh", 1),
            ("port 29500", 2),
            ("user", 3),
            ("identity /k", 4),
            ("model files /d", 4),
            ("leftovers .", 4),
            ("auditd", 4),
            ("apparmor", 5),
            ("selinux", 5),
            ("python /p", 5),
            ("storage /d", 5),
            ("swap", 5),
            ("core dumps", 5),
            ("ptrace", 5),
            ("fuse.conf", 5),
        ];
        for (name, i) in names {
            assert_eq!(heading_of(name), HEADINGS[i], "{name}");
        }
        assert_eq!(heading_of("/dev/fuse"), MVAULT);
        assert_eq!(heading_of("fusermount3"), MVAULT);
    }

    #[test]
    fn grouping_keeps_the_checklist_order() {
        let mut checks: Vec<Check> = [
            "fusermount3",
            "swap",
            "user",
            "port 29500",
            "ssh",
            "security updates",
        ]
        .iter()
        .map(|n| super::super::check(*n, Status::Ok, "x"))
        .collect();
        group(&mut checks);
        let order: Vec<&str> = checks.iter().map(|c| c.check.as_str()).collect();
        assert_eq!(
            order,
            [
                "security updates",
                "ssh",
                "port 29500",
                "user",
                "swap",
                "fusermount3"
            ]
        );
        assert_eq!(checks[5].heading, Some(MVAULT));
    }
}
