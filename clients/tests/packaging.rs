//! Man pages and shell completions generated from each tool's clap definition.

mod common;

use std::process::Command;

use common::*;

const TOOLS: [&str; 4] = ["wren-pub", "wren-sub", "wren-rr", "wren-sensor"];

#[test]
fn man_pages_are_generated_for_every_tool() {
    let dir = scratch_dir();
    for tool in TOOLS {
        let out = Command::new(bin(tool))
            .arg("--generate-man")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool}: {out:?}");
        let page = std::fs::read_to_string(dir.join(format!("{tool}.1"))).unwrap();
        assert!(page.contains(&format!(".TH {tool} 1")), "{tool}: {page}");
        assert!(page.contains(".SH NAME"), "{tool}");
        assert!(page.contains(".SH SYNOPSIS"), "{tool}");
        // The connection flags every tool shares, rendered in the page.
        assert!(page.contains(r"\fB\-\-host\fR"), "{tool}");
        assert!(page.contains(r"\fB\-\-keepalive\fR"), "{tool}");
    }
    let rr = std::fs::read_to_string(dir.join("wren-rr.1")).unwrap();
    assert!(rr.contains("Response topic"), "{rr}");
    let pubs = std::fs::read_to_string(dir.join("wren-pub.1")).unwrap();
    assert!(pubs.contains(r"\-\-console"), "{pubs}");
}

#[test]
fn completions_are_generated_for_every_tool_and_shell() {
    for tool in TOOLS {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let out = Command::new(bin(tool))
                .args(["--generate-completions", shell])
                .output()
                .unwrap();
            assert!(out.status.success(), "{tool} {shell}: {out:?}");
            let script = String::from_utf8(out.stdout).unwrap();
            assert!(script.contains("keepalive"), "{tool} {shell}");
        }
        // The bash script parses.
        let out = Command::new(bin(tool))
            .args(["--generate-completions", "bash"])
            .output()
            .unwrap();
        let file = scratch_dir().join(format!("{tool}.bash"));
        std::fs::write(&file, &out.stdout).unwrap();
        let check = Command::new("bash").arg("-n").arg(&file).status().unwrap();
        assert!(check.success(), "{tool}: bash -n {}", file.display());
    }
    let out = Command::new(bin("wren-sub"))
        .args(["--generate-completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown shell 'tcsh'"));
}
