//! Outputs that cannot destroy inputs and are never seen half-written.
//!
//! Every output goes to a hidden temporary beside its final path, named
//! `.<name>.widen-tmp-<pid>-<n>`, and is renamed into place when complete. A run killed before
//! the rename leaves that temporary behind; the next run that writes into the same directory
//! removes every widen temporary whose process is gone ([`remove_stale_temporaries`]).

use std::ffi::OsStr;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// The tag in the names of widen's temporaries (files and checkpoint directories).
pub const TEMP_TAG: &str = "widen-tmp";
/// The tag of a replaced checkpoint kept until its successor is in place.
const OLD_TAG: &str = "widen-old";

/// Why an output was refused or could not be written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output would overwrite, or be written inside, one of the inputs.
    #[error(
        "refusing to write {output}: it {how} the input {input}, which widen never modifies; choose an output path outside the inputs"
    )]
    Aliases {
        /// The output as given.
        output: String,
        /// The input it collides with, as given.
        input: String,
        /// `is`, `lies inside`, or `contains`.
        how: &'static str,
    },
    /// A file output whose path is a directory.
    #[error("cannot write {path}: it is a directory; give a file path such as {path}/out.npy")]
    IsDirectory {
        /// The path given.
        path: String,
    },
    /// The output's directory does not exist.
    #[error("cannot write {path}: its directory {parent} does not exist; create it first")]
    NoParent {
        /// The path given.
        path: String,
        /// Its parent directory.
        parent: String,
    },
    /// The operating system refused.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// `path` made absolute with links resolved, also for a path that does not exist yet: each
/// component is appended to the resolved prefix, which is canonicalised while it exists (so
/// links count), and `..` steps back from what is resolved so far (so `newdir/../x` is `x`).
fn resolve(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd,
        _ => PathBuf::new(),
    };
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => {
                out.push(other.as_os_str());
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &Path, _: &Path) -> bool {
    false
}

/// Refuses an `output` (a file or a directory to be created or replaced) that is one of
/// `inputs` (after resolving links, and hard links on Unix), lies inside an input directory, or
/// contains an input. Inputs that do not exist are skipped: their reader reports them.
pub fn check_output(output: &Path, inputs: &[&Path]) -> Result<(), OutputError> {
    let out = resolve(output);
    for &input in inputs {
        let Ok(inp) = input.canonicalize() else {
            continue;
        };
        let how = if out == inp || same_file(&out, &inp) {
            Some("is")
        } else if out.starts_with(&inp) {
            Some("lies inside")
        } else if inp.starts_with(&out) {
            Some("contains")
        } else {
            None
        };
        if let Some(how) = how {
            return Err(OutputError::Aliases {
                output: display(output),
                input: display(input),
                how,
            });
        }
    }
    Ok(())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name beside `path`: `.<name>.widen-tmp-<pid>-<n>` (or another `tag`).
pub fn temp_sibling(path: &Path) -> PathBuf {
    tagged_sibling(path, TEMP_TAG)
}

/// A fresh name for the previous version of `path` while its replacement is renamed in:
/// `.<name>.widen-old-<pid>-<n>`, removed once the replacement is in place.
pub fn old_sibling(path: &Path) -> PathBuf {
    tagged_sibling(path, OLD_TAG)
}

fn tagged_sibling(path: &Path, tag: &str) -> PathBuf {
    let parent = parent_of(path);
    let name = path.file_name().unwrap_or(OsStr::new("output"));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut file = std::ffi::OsString::from(".");
    file.push(name);
    file.push(format!(".{tag}-{}-{n}", std::process::id()));
    parent.join(file)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `(tag, pid)` when `name` is one of widen's temporaries.
fn parse_temp(name: &str) -> Option<(&'static str, u32)> {
    let body = name.strip_prefix('.')?;
    for tag in [TEMP_TAG, OLD_TAG] {
        let marker = format!(".{tag}-");
        if let Some(at) = body.rfind(&marker) {
            let rest = &body[at + marker.len()..];
            let (pid, n) = rest.split_once('-')?;
            if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() {
                return Some((tag, pid.parse().ok()?));
            }
        }
    }
    None
}

/// Whether process `pid` may still be running (and writing its temporary). Where `/proc` is
/// missing nothing can be told, so every process counts as alive and nothing is removed.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes widen's temporaries in `dir` whose process has ended: files, and checkpoint
/// directories that hold plain files only (anything else there is not ours to delete). A
/// `widen-old` copy is removed once the checkpoint that replaced it exists, and renamed back
/// to its place when none does. Returns how many entries were removed or restored; failures
/// are ignored (the next run tries again).
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((tag, pid)) = name.to_str().and_then(parse_temp) else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let path = entry.path();
        if tag == OLD_TAG {
            let original = name
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.rfind(&format!(".{OLD_TAG}-")).map(|at| &n[..at]));
            let Some(original) = original.map(|o| dir.join(o)) else {
                continue;
            };
            if !original.exists() {
                // Killed between its two renames: the previous version is the only copy, so
                // it goes back where it was instead of being lost or left hidden.
                removed += usize::from(fs::rename(&path, &original).is_ok());
                continue;
            }
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() {
            removed += usize::from(fs::remove_file(&path).is_ok());
        } else if kind.is_dir() && remove_flat_dir(&path) {
            removed += 1;
        }
    }
    removed
}

/// Removes a directory holding plain files only; leaves anything else alone.
fn remove_flat_dir(path: &Path) -> bool {
    let Ok(entries) = fs::read_dir(path) else {
        return false;
    };
    let entries: Vec<_> = entries.flatten().collect();
    if entries
        .iter()
        .any(|e| !e.file_type().is_ok_and(|t| t.is_file()))
    {
        return false;
    }
    for e in entries {
        let _ = fs::remove_file(e.path());
    }
    fs::remove_dir(path).is_ok()
}

/// Whether a file can be written at `path`: not a directory (nor a path ending in `/`), in a
/// directory that exists. Callers check this before long work, so a typo fails at once.
pub fn check_file_output(path: &Path) -> Result<(), OutputError> {
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(OutputError::IsDirectory {
            path: display(path).trim_end_matches('/').to_string(),
        });
    }
    let parent = parent_of(path);
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        _ => Err(OutputError::NoParent {
            path: display(path),
            parent: display(parent),
        }),
    }
}

/// Writes `bytes` to `path` through a temporary and a rename, so `path` holds either its old
/// content or all of the new. `path` must not be a directory and its directory must exist.
/// Stale temporaries of earlier, killed runs in that directory are removed first.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    check_file_output(path)?;
    let parent = parent_of(path);
    remove_stale_temporaries(parent);
    let io = |p: &Path| {
        let p = display(p);
        move |source| OutputError::Io { path: p, source }
    };
    let tmp = loop {
        let candidate = temp_sibling(path);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(f) => break (candidate, f),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&candidate)(e)),
        }
    };
    let (tmp_path, mut file) = tmp;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp_path))
        .and_then(|()| fs::rename(&tmp_path, path).map_err(io(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result?;
    if let Ok(d) = fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("widen-guard-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn outputs_that_alias_inputs_are_refused() {
        let dir = scratch("alias");
        let input = dir.join("x.npy");
        fs::write(&input, b"data").unwrap();
        let model = dir.join("model");
        fs::create_dir(&model).unwrap();
        let err = |out: &Path| {
            check_output(out, &[&input, &model])
                .unwrap_err()
                .to_string()
        };
        assert!(err(&input).contains("it is the input"));
        assert!(err(&dir.join("./x.npy")).contains("it is the input"));
        // Through a directory that does not exist yet: `newdir/..` is `dir`.
        assert!(err(&dir.join("newdir/../x.npy")).contains("it is the input"));
        assert!(err(&dir.join("newdir/../model/y.npy")).contains("lies inside"));
        assert!(err(&model.join("weights.safetensors")).contains("lies inside"));
        assert!(err(&model.join("new/deeper")).contains("lies inside"));
        assert!(err(&dir).contains("contains"));
        #[cfg(unix)]
        {
            let link = dir.join("link.npy");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            assert!(err(&link).contains("it is the input"));
            let hard = dir.join("hard.npy");
            fs::hard_link(&input, &hard).unwrap();
            assert!(err(&hard).contains("it is the input"));
        }
        assert!(check_output(&dir.join("y.npy"), &[&input, &model]).is_ok());
        assert!(check_output(&dir.join("model2"), &[&input, &model]).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn atomic_writes_replace_whole_and_clean_stale_temporaries() {
        let dir = scratch("atomic");
        let out = dir.join("y.npy");
        // A temporary of a process that cannot exist (pid above the kernel's maximum).
        let stale = dir.join(".y.npy.widen-tmp-4294967295-0");
        fs::write(&stale, b"half").unwrap();
        let stale_dir = dir.join(".m.widen-tmp-4294967295-3");
        fs::create_dir(&stale_dir).unwrap();
        fs::write(stale_dir.join("model.json"), b"{").unwrap();
        let keep_dir = dir.join(".n.widen-tmp-4294967295-4");
        fs::create_dir_all(keep_dir.join("sub")).unwrap();
        // A replaced checkpoint whose successor never arrived goes back to its place.
        let orphan = dir.join(".ck.widen-old-4294967295-5");
        fs::create_dir(&orphan).unwrap();
        fs::write(orphan.join("model.json"), b"{}").unwrap();
        let foreign = dir.join(".y.npy.backup");
        fs::write(&foreign, b"mine").unwrap();
        write_file_atomically(&out, b"first").unwrap();
        write_file_atomically(&out, b"second").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"second");
        assert!(!stale.exists() && !stale_dir.exists());
        assert!(
            keep_dir.exists(),
            "a directory with subdirectories is not ours"
        );
        assert!(foreign.exists());
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".widen-tmp-"))
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(matches!(
            write_file_atomically(&dir, b"x"),
            Err(OutputError::IsDirectory { .. })
        ));
        assert!(matches!(
            write_file_atomically(&dir.join("no/such/y.npy"), b"x"),
            Err(OutputError::NoParent { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn temp_names_parse_back() {
        let p = temp_sibling(Path::new("/a/b/out.npy"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_temp(name), Some((TEMP_TAG, std::process::id())));
        assert_eq!(parse_temp(".x.widen-old-12-3"), Some((OLD_TAG, 12)));
        assert_eq!(parse_temp("x.widen-tmp-12-3"), None);
        assert_eq!(parse_temp(".x.widen-tmp-12-"), None);
        assert_eq!(parse_temp(".x.widen-tmp-ab-1"), None);
    }
}
