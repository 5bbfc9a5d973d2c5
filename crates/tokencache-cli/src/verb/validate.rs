//! `tokencache validate`: can MSAL use every entry?

use std::process::ExitCode;

use tokencache::Problem;

use crate::error::CliError;
use crate::file;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Exit 0 when the cache at `target` is clean, 1 with the list of problems, 2 when it cannot
/// be read.
pub fn run(target: &Target, key: &KeyArgs) -> Result<ExitCode, CliError> {
    match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let stores::Loaded {
                whole, unreadable, ..
            } = stores::block_on(async {
                stores::load_all(&super::open_store(url, key).await?).await
            })??;
            let unreadable: Vec<String> = unreadable
                .into_iter()
                .map(|(k, why)| format!("partition {k:?}: {why}"))
                .collect();
            Ok(report(target, &unreadable, &whole.problems()))
        }
        Target::File(path) => match file::load(path, key) {
            Err(CliError::File(tokencache_file::FileError::Corrupt { source, .. })) => {
                // Not a cache at all: it cannot be read, which is not a list of problems.
                outln!("{target}: not a token cache: {source}");
                Ok(ExitCode::from(crate::error::CANNOT_READ))
            }
            Err(e) => Err(e),
            Ok(cache) => Ok(report(target, &[], &cache.problems())),
        },
    }
}

fn report(target: &Target, unreadable: &[String], problems: &[Problem]) -> ExitCode {
    if problems.is_empty() && unreadable.is_empty() {
        outln!("{target}: ok");
        return ExitCode::SUCCESS;
    }
    outln!("{target}: {} problem(s)", problems.len() + unreadable.len());
    for u in unreadable {
        outln!("  {u}");
    }
    for p in problems {
        outln!("  {p}");
    }
    ExitCode::from(1)
}
