//! The memory budget: every size a caller chooses (a channel count, a case count, a file's
//! declared shape) is turned into bytes and checked here *before* anything is allocated, so an
//! absurd request is a typed error instead of an allocator abort.

use std::sync::RwLock;

use thiserror::Error;

/// The environment variable that sets the budget (`WIDEN_MAX_MEMORY=8G`).
pub const ENV_VAR: &str = "WIDEN_MAX_MEMORY";

/// Why a request was refused, or a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The request needs more memory than the budget allows.
    #[error(
        "{what} needs {}, more than the memory budget of {} ({origin}); if the machine has the memory, raise the budget: the CLI's --max-memory SIZE, or {ENV_VAR}=SIZE (for example 16G)",
        human(*needed),
        human(u128::from(*limit))
    )]
    Exceeded {
        /// What was about to be allocated, in the caller's words.
        what: String,
        /// Bytes it needs (may exceed `u64`: sizes are multiplied in `u128`).
        needed: u128,
        /// The budget in bytes.
        limit: u64,
        /// Where the budget came from.
        origin: String,
    },
    /// A size such as `--max-memory 4G` that is not one.
    #[error(
        "memory size `{text}`: {reason}; expected a number of bytes with an optional K, M, G or T suffix (binary, e.g. 512M, 8G)"
    )]
    BadSize {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Bytes as a person reads them: `1.50 GiB`, `512 bytes` (binary units).
pub fn format_size(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// [`format_size`] with the exact count: `1.50 GiB (1610612736 bytes)`.
pub(crate) fn human(bytes: u128) -> String {
    if bytes < 1024 {
        format_size(bytes)
    } else {
        format!("{} ({bytes} bytes)", format_size(bytes))
    }
}

/// Parses `4096`, `512K`, `512M`, `8G`, `1.5G`, `2T` (also `GiB`/`GB` spellings; all binary).
pub fn parse_size(text: &str) -> Result<u64, BudgetError> {
    let bad = |reason: &str| BudgetError::BadSize {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad("unknown unit")),
    };
    let value: f64 = number.parse().map_err(|_| bad("not a number"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(bad("must be at least one byte"));
    }
    if bytes >= u64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes as u64)
}

/// How many bytes one request may take, and where that number came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    limit: u64,
    source: String,
}

impl MemoryBudget {
    /// A budget of `limit` bytes; `source` says where it came from in error messages.
    pub fn new(limit: u64, source: impl Into<String>) -> Self {
        Self {
            limit,
            source: source.into(),
        }
    }

    /// `WIDEN_MAX_MEMORY` when set (an unreadable value is an error), else [`Self::from_machine`].
    pub fn from_env() -> Result<Self, BudgetError> {
        match std::env::var(ENV_VAR) {
            Ok(text) => Ok(Self::new(parse_size(&text)?, format!("{ENV_VAR}={text}"))),
            Err(_) => Ok(Self::from_machine()),
        }
    }

    /// Half of the smallest of: physical memory, the cgroup's memory limit, and the process's
    /// address-space and data-segment limits. Half, because a request's main buffer is rarely
    /// alone (the file it came from, the tensor it becomes, gradients), and an address-space
    /// limit also covers thread stacks and allocator arenas. 8 GiB where none can be read.
    pub fn from_machine() -> Self {
        let mut limits: Vec<(u64, &str)> = Vec::new();
        if let Some(total) = read_meminfo_total() {
            limits.push((total, "physical memory"));
        }
        if let Some(cgroup) = read_cgroup_limit() {
            limits.push((cgroup, "the cgroup memory limit"));
        }
        for (field, name) in [
            ("Max address space", "the address-space limit (ulimit -v)"),
            ("Max data size", "the data-segment limit (ulimit -d)"),
        ] {
            if let Some(limit) = read_rlimit(field) {
                limits.push((limit, name));
            }
        }
        match limits.into_iter().min_by_key(|&(l, _)| l) {
            Some((limit, name)) => Self::new(limit / 2, format!("half of {name}")),
            None => Self::new(8 << 30, "the default where the machine's memory is unknown"),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Where the budget came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Refuses `bytes` if they exceed the budget; `what` names the request in the error.
    pub fn check(&self, what: &str, bytes: u128) -> Result<(), BudgetError> {
        if bytes > u128::from(self.limit) {
            return Err(BudgetError::Exceeded {
                what: what.to_string(),
                needed: bytes,
                limit: self.limit,
                origin: self.source.clone(),
            });
        }
        Ok(())
    }

    /// Checks `product(dims) × bytes_per` and returns the element count (which then fits in
    /// `usize`, since the budget does).
    pub fn check_elements(
        &self,
        what: &str,
        dims: &[usize],
        bytes_per: usize,
    ) -> Result<usize, BudgetError> {
        let count = dims
            .iter()
            .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
        self.check(what, count.saturating_mul(bytes_per as u128))?;
        // Within the budget (a u64) and a usize on 64-bit targets; saturate elsewhere.
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }
}

static GLOBAL: RwLock<Option<MemoryBudget>> = RwLock::new(None);

/// The process-wide budget: what [`set_budget`] set, else [`MemoryBudget::from_env`] (falling
/// back to the machine's when `WIDEN_MAX_MEMORY` is unreadable; the CLI reports that case).
pub fn budget() -> MemoryBudget {
    if let Ok(guard) = GLOBAL.read()
        && let Some(b) = guard.as_ref()
    {
        return b.clone();
    }
    let b = MemoryBudget::from_env().unwrap_or_else(|_| MemoryBudget::from_machine());
    if let Ok(mut guard) = GLOBAL.write() {
        *guard = Some(b.clone());
    }
    b
}

/// Replaces the process-wide budget (the CLI's `--max-memory`).
pub fn set_budget(b: MemoryBudget) {
    if let Ok(mut guard) = GLOBAL.write() {
        *guard = Some(b);
    }
}

fn read_meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn read_cgroup_limit() -> Option<u64> {
    for path in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(limit) = text.trim().parse::<u64>()
            // cgroup v1 writes a huge number for "no limit".
            && limit < (1u64 << 62)
        {
            return Some(limit);
        }
    }
    None
}

/// The soft limit of one `/proc/self/limits` row, in bytes; `None` when unlimited or unknown.
fn read_rlimit(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("8 GiB").unwrap(), 8 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        for bad in ["", "G", "-1G", "0", "12Q", "1e400", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_refuses_past_the_limit_and_names_the_request() {
        let b = MemoryBudget::new(1000, "a test");
        assert!(b.check("x", 1000).is_ok());
        let err = b.check("the widened kernel", 1001).unwrap_err().to_string();
        assert!(err.contains("the widened kernel needs 1001 bytes"), "{err}");
        assert!(
            err.contains("--max-memory") && err.contains(ENV_VAR),
            "{err}"
        );
        assert_eq!(b.check_elements("x", &[10, 25], 4).unwrap(), 250);
        assert!(
            b.check_elements("x", &[usize::MAX, usize::MAX, 3], 8)
                .is_err()
        );
    }

    #[test]
    fn the_machine_budget_is_positive_and_below_physical_memory() {
        let b = MemoryBudget::from_machine();
        assert!(b.limit() > 0);
        if let Some(total) = read_meminfo_total() {
            assert!(b.limit() <= total / 2, "{b:?}");
        }
    }
}
