//! What a shell user expects of a CLI (issue 31): completion and a man page generated from the
//! CLI definition.

use std::process::{Command, Output};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

fn loko(args: &[&str]) -> Output {
    Command::new(LOKO)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `loko completion bash` sourced into bash completes subcommands and their flags;
/// zsh and fish get their own scripts.
#[test]
fn bash_completes_subcommands_and_flags_from_the_generated_script() {
    let script = format!(
        r#"source <({LOKO} completion bash)
COMP_WORDS=(loko jo); COMP_CWORD=1; _loko loko jo loko; echo "words: ${{COMPREPLY[*]}}"
COMP_WORDS=(loko journal --fo); COMP_CWORD=2; _loko loko --fo journal; echo "flags: ${{COMPREPLY[*]}}"
"#
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("words: journal\n"), "{said}");
    assert!(said.contains("flags: --follow\n"), "{said}");
    for (shell, marker) in [("zsh", "#compdef loko"), ("fish", "complete -c loko")] {
        let out = loko(&["completion", shell]);
        assert!(out.status.success());
        assert!(text(&out.stdout).contains(marker), "{shell}");
    }
}

/// `loko man` prints one roff page with every subcommand's synopsis and options, which groff
/// formats without a warning.
#[test]
fn the_man_page_lists_every_subcommand_and_formats_cleanly() {
    let out = loko(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH loko 1"),
        "{page}"
    );
    for sub in [
        "RUN",
        "PLAN",
        "DESTROY",
        "STATUS",
        "JOURNAL",
        "SIM",
        "COMPLETION",
    ] {
        assert!(page.contains(&format!(".SH \"LOKO {sub}\"")), "{sub}");
    }
    assert!(page.contains("\\-\\-since"), "the journal's options");
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff (Debian: groff-base)");
    use std::io::Write as _;
    groff.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let formatted = groff.wait_with_output().unwrap();
    assert!(formatted.status.success());
    assert_eq!(text(&formatted.stderr), "", "groff warnings");
}
