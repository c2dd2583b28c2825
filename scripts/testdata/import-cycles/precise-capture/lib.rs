//! A case of `scripts/import-cycles`: `use<..>` in a return type (precise capturing) lists
//! generics, not imports, and once stopped the script with an IndexError.

mod names;

use names::Name;

/// Captures nothing from its argument, which `use<>` says.
pub fn greeter(prefix: &str) -> impl Fn(&Name) -> String + use<> {
    let prefix = prefix.to_owned();
    move |name| format!("{prefix} {}", name.0)
}
