//! Guards every widen crate shares at its edges: how much memory a caller-sized request may
//! take, and how outputs reach the disk without destroying inputs or leaving halves behind.
//!
//! **Owns:** the process-wide [`MemoryBudget`] (default from the machine: physical memory, the
//! cgroup limit and the address-space limit, whichever is smallest; `WIDEN_MAX_MEMORY` or a
//! caller's `--max-memory` overrides it); [`check_output`], which refuses an output that is an
//! input or lies inside an input directory; [`write_file_atomically`] and the naming of widen's
//! temporaries, with [`remove_stale_temporaries`] for those a killed run left behind;
//! [`read_bounded`], which reads an input only if it is a regular file within the budget.
//!
//! **Must not know:** tensors, layers, models or any file format. It depends on std and
//! `thiserror` only, so every other crate can use it. Limits are read from `/proc` and
//! `/sys/fs/cgroup` text rather than through `libc`, which keeps the crate free of `unsafe`.

mod budget;
mod input;
mod output;

pub use budget::{BudgetError, MemoryBudget, budget, format_size, parse_size, set_budget};
pub use input::{InputError, read_bounded};
pub use output::{
    OutputError, TEMP_TAG, check_file_output, check_output, old_sibling, remove_stale_temporaries,
    temp_sibling, write_file_atomically,
};
