//! The fuzz driver as a test target with its own `main` (`harness = false`), so it links
//! against the burn build every other test shares:
//! `cargo test -p widen-fuzz --test fuzz -- --seconds 60`. See `widen_fuzz::driver`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A counting wrapper around the system allocator: the allocation oracles need every
/// request's size, and only a `#[global_allocator]` sees them all.
// `GlobalAlloc` is an unsafe trait; this module only forwards to `System` and counts, so the
// workspace's `unsafe_code` denial is lifted here and nowhere else.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// One request over this aborts the process (the parent files the input).
    pub const SINGLE_CAP: usize = 1 << 30;
    /// Live bytes over this abort too: many mid-sized requests can exhaust the machine.
    pub const LIVE_CAP: usize = 6 << 30;

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static LARGEST: AtomicUsize = AtomicUsize::new(0);

    pub struct Counting;

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Writes without allocating (stderr is unbuffered) and aborts: an allocator may not
    /// unwind, and returning null would abort anyway, without saying why.
    fn over(what: &str, bytes: usize, cap: usize) -> ! {
        let _ = writeln!(
            std::io::stderr(),
            "widen-fuzz: {what} of {bytes} bytes exceeds the cap of {cap} bytes; aborting"
        );
        std::process::abort()
    }

    /// Counts a request of `bytes` before it is made.
    fn admit(bytes: usize) {
        LARGEST.fetch_max(bytes, Ordering::Relaxed);
        if bytes > SINGLE_CAP {
            over("one allocation", bytes, SINGLE_CAP);
        }
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if live > LIVE_CAP {
            over("live memory", live, LIVE_CAP);
        }
    }

    fn release(bytes: usize) {
        LIVE.fetch_sub(bytes, Ordering::Relaxed);
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            admit(layout.size());
            // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
            let p = unsafe { System.alloc(layout) };
            if p.is_null() {
                release(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            admit(layout.size());
            // SAFETY: as for `alloc`.
            let p = unsafe { System.alloc_zeroed(layout) };
            if p.is_null() {
                release(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from this allocator (that is, from `System`) with `layout`.
            unsafe { System.dealloc(ptr, layout) };
            release(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let old = layout.size();
            if new_size > old {
                LARGEST.fetch_max(new_size, Ordering::Relaxed);
                if new_size > SINGLE_CAP {
                    over("one allocation", new_size, SINGLE_CAP);
                }
                admit(new_size - old);
            }
            // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if p.is_null() {
                if new_size > old {
                    release(new_size - old);
                }
            } else if new_size < old {
                release(old - new_size);
            }
            p
        }
    }

    /// The largest single request since the previous call.
    pub fn take_largest() -> usize {
        LARGEST.swap(0, Ordering::Relaxed)
    }
}

/// `target/widen-fuzz`: beside the other build outputs, so `cargo clean` removes it.
fn work_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("widen-fuzz")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    widen_fuzz::main_with(
        &args,
        work_dir(),
        widen_fuzz::driver::Hooks {
            take_largest_alloc: counting::take_largest,
        },
    )
}
