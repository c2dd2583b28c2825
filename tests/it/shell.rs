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

/// Runs `command` in a terminal (`script`) with `env`, and returns what it drew.
fn on_a_terminal(command: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new("script")
        .args(["-qefc", command, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        // script's terminal has no size; the progress line needs one (as in cli.rs's test).
        .env("COLUMNS", "200")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    text(&out.stdout)
}

/// On a terminal, steps done are green and an error red; piped or under NO_COLOR, no escape
/// sequence at all.
#[test]
fn colour_on_a_terminal_and_never_piped_or_under_no_color() {
    // Each run builds its own tutorial cluster: a second run of one would have nothing to do.
    let tutorial = || loko_tests::example_copy("tutorial.yaml");
    let run =
        |spec: &std::path::Path| format!("{LOKO} run {} --sim --time-scale 0.02", spec.display());
    let (_a, spec) = tutorial();
    let drawn = on_a_terminal(&run(&spec), &[]);
    assert!(drawn.contains("\x1b[32mdone\x1b[0m in"), "{drawn}");
    let error = format!("{LOKO} journal --state-dir /nonexistent/loko 1");
    assert!(on_a_terminal(&error, &[]).contains("\x1b[31merror\x1b[0m: "));

    let (_b, spec) = tutorial();
    let plain = on_a_terminal(&run(&spec), &[("NO_COLOR", "1")]);
    assert!(plain.contains(": done in"), "{plain}");
    assert!(!plain.contains("\x1b[3"), "{plain}");
    assert!(!on_a_terminal(&error, &[("NO_COLOR", "1")]).contains("\x1b[3"));
    let (_c, spec) = tutorial();
    let piped = loko(&[
        "run",
        spec.to_str().unwrap(),
        "--sim",
        "--time-scale",
        "0.02",
    ]);
    assert!(piped.status.success());
    assert!(!text(&piped.stdout).contains('\x1b'));
    assert!(!text(&piped.stderr).contains('\x1b'));
}
