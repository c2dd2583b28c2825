//! `loko completion SHELL` and `loko man`: shell completion and a man page, both generated from
//! the CLI definition (`cli.rs`), so they never fall behind it. Nothing installs them; the
//! README says where they go.

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionArgs};
use crate::output::out;

/// Prints the completion script of `args.shell` for `loko`.
pub fn completion(args: &CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "loko", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page of `loko` (roff), its subcommands each as a section.
pub fn man() -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render(&mut page)?;
    // One page: the subcommands' own usage and options after the main page, as `git help -a`
    // lists them, rather than a file per subcommand that nothing would install.
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("loko {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let mut part = Vec::new();
        let man = clap_mangen::Man::new(sub);
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        man.render_options_section(&mut part)?;
        // The subcommand's sections become subsections of its own.
        let part = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
        page.extend_from_slice(format!(".SH \"{}\"\n{part}", name.to_uppercase()).as_bytes());
    }
    out!("{}", String::from_utf8_lossy(&page));
    Ok(ExitCode::SUCCESS)
}
