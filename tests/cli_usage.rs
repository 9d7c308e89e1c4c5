//! Command-line tests: every subcommand has help with examples; shell completions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::cli::*;
#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        "sign",
        "verify",
        "explain",
        "diagnose",
        "check-config",
        "completions",
    ] {
        let o = run(&[sub, "--help"]);
        assert_eq!(code(&o), 0, "{sub}");
        assert!(stdout(&o).contains("Examples:"), "{sub}: {}", stdout(&o));
    }
    let o = run(&["no-such-command"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("error"));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert_eq!(code(&o), 0, "{shell}");
        assert!(stdout(&o).contains("check-config"), "{shell}");
    }
    assert_eq!(code(&run(&["completions", "tcsh"])), 2);
}
