//! Gives libgit2's freed memory back to the system. Indexing a large fetched pack
//! allocates about 100 MiB in the blocking thread's malloc arena; glibc keeps it after it
//! is freed, so a daemon idle after its first deploy held it for good (benches/RESULTS.md).

/// Returns free heap pages to the system (glibc `malloc_trim`); a no-op elsewhere.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions and is thread-safe; it only releases
    // memory that is already free.
    #[expect(
        unsafe_code,
        reason = "glibc's malloc_trim is only reachable through FFI"
    )]
    unsafe {
        libc::malloc_trim(0);
    }
}
