//! Reading an input file within the memory budget: checked to be a regular file before it is
//! opened (opening a FIFO blocks), checked again through the open handle (so a file swapped
//! for `/dev/zero` in between is not read unbounded), and read no further than the size that
//! was checked.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use thiserror::Error;

use crate::{BudgetError, budget};

/// Why an input file was not read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InputError {
    /// The operating system refused.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A directory, device, FIFO or socket where a file belongs: none has a size to check, and
    /// a FIFO or `/dev/zero` may never end.
    #[error("cannot read {path}: it is {kind}, not a regular file")]
    NotRegular {
        /// The path as given.
        path: String,
        /// `a directory` or `a device, FIFO or socket`.
        kind: &'static str,
    },
    /// The file (times what reading it costs) is over the memory budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// Reads the regular file at `path` after checking `factor ×` its size against the budget
/// (`factor` covers what the caller builds from the bytes: a parsed tree, decoded values).
/// `what` names the file in a budget refusal.
pub fn read_bounded(path: &Path, what: &str, factor: u128) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        path: path.display().to_string(),
        source,
    };
    // Checked before opening too: opening a FIFO blocks until something writes to it.
    let before = std::fs::metadata(path).map_err(io)?;
    let file = if before.is_file() {
        Some(File::open(path).map_err(io)?)
    } else {
        None
    };
    // The handle's own metadata: what is read is what was checked.
    let meta = match &file {
        Some(f) => f.metadata().map_err(io)?,
        None => before,
    };
    let (Some(file), true) = (file, meta.is_file()) else {
        return Err(InputError::NotRegular {
            path: path.display().to_string(),
            kind: if meta.is_dir() {
                "a directory"
            } else {
                "a device, FIFO or socket"
            },
        });
    };
    let len = meta.len();
    budget().check(
        &format!("reading {what} {} ({len} bytes)", path.display()),
        u128::from(len).saturating_mul(factor.max(1)),
    )?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // A file that grows while it is read is read up to the checked size (and then fails to
    // parse, as a truncated file would).
    file.take(len).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn regular_files_are_read_and_others_refused() {
        let dir = std::env::temp_dir().join(format!("widen-guard-input-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_bounded(&f, "a test file", 2).unwrap(), b"hello");
        assert!(matches!(
            read_bounded(&dir, "a test file", 2),
            Err(InputError::NotRegular {
                kind: "a directory",
                ..
            })
        ));
        if Path::new("/dev/zero").exists() {
            let err = read_bounded(Path::new("/dev/zero"), "a test file", 2).unwrap_err();
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        // A FIFO with no writer: opening it would block forever.
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = read_bounded(&fifo, "a test file", 2).unwrap_err();
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        assert!(matches!(
            read_bounded(&dir.join("none"), "a test file", 2),
            Err(InputError::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
