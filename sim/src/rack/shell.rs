//! Shell scripts as the rack's judges read them (an installer's, a wipe's): commands as words.

/// The script's simple commands, as words: continuation lines joined, single and double quotes
/// removed. Enough for the installers and
/// wipes that exist (Typhoon's, Lokomotive's, loko's).
pub(super) fn shell_commands(script: &str) -> Vec<Vec<String>> {
    script
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
                .collect()
        })
        .collect()
}
