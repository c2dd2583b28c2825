//! `loko validate` and `loko schema`: the spec, checked without touching any API.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::ValidateArgs;
use crate::failure::{EXIT_USAGE, UserError};
use crate::output::{errln, outln};

pub fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let desired = load_spec(&args.spec)?.desired();
    outln!(
        "{}: valid: cluster {}, {} controller(s), {} worker(s) in {} pool(s)",
        args.spec.display(),
        desired.settings.cluster_name,
        desired.controllers().count(),
        desired.workers().count(),
        desired.pools.len(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads a spec; errors are printed one per line and end as a usage error.
pub fn load_spec(path: &Path) -> anyhow::Result<specs::Spec> {
    match specs::load(path) {
        Ok(spec) => Ok(spec),
        Err(errors) => {
            // Every error on its own line, as compilers print them; the summary goes through
            // the common error path for the exit code.
            errln!("{errors}");
            Err(UserError {
                message: format!(
                    "{}: {} error(s) in the spec",
                    path.display(),
                    errors.errors.len()
                ),
                code: EXIT_USAGE,
                hint: Some("see docs/spec.md for every field and its default".into()),
            }
            .into())
        }
    }
}

pub fn schema() -> anyhow::Result<ExitCode> {
    outln!("{}", serde_json::to_string_pretty(&specs::json_schema())?);
    Ok(ExitCode::SUCCESS)
}
