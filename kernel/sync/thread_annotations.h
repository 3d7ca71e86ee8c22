// Clang thread-safety analysis attributes (-Wthread-safety), as macros that vanish for other
// compilers. See https://clang.llvm.org/docs/ThreadSafetyAnalysis.html for the semantics.
#pragma once

#if defined(__clang__)
#define COHORT_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define COHORT_THREAD_ANNOTATION(x)
#endif

/// The class is a lock ("capability"); `name` appears in diagnostics.
#define COHORT_CAPABILITY(name) COHORT_THREAD_ANNOTATION(capability(name))
/// The class is an RAII holder of a capability (a guard).
#define COHORT_SCOPED_CAPABILITY COHORT_THREAD_ANNOTATION(scoped_lockable)
/// The member or global may only be accessed with `lock` held.
#define COHORT_GUARDED_BY(lock) COHORT_THREAD_ANNOTATION(guarded_by(lock))
/// The pointee may only be accessed with `lock` held (the pointer itself is free).
#define COHORT_PT_GUARDED_BY(lock) COHORT_THREAD_ANNOTATION(pt_guarded_by(lock))
/// Lock ordering hints checked by -Wthread-safety-beta.
#define COHORT_ACQUIRED_BEFORE(...) COHORT_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define COHORT_ACQUIRED_AFTER(...) COHORT_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
/// The caller must hold the capabilities exclusively / shared.
#define COHORT_REQUIRES(...) COHORT_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define COHORT_REQUIRES_SHARED(...)                                                                \
    COHORT_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
/// The function acquires / releases the capabilities (`this` when the list is empty).
#define COHORT_ACQUIRE(...) COHORT_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define COHORT_ACQUIRE_SHARED(...) COHORT_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define COHORT_RELEASE(...) COHORT_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define COHORT_RELEASE_SHARED(...) COHORT_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
/// Releases whichever way the capability is held (guard destructors).
#define COHORT_RELEASE_GENERIC(...)                                                                \
    COHORT_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
/// Acquires the capability iff the function returns `result` (try_lock).
#define COHORT_TRY_ACQUIRE(...) COHORT_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define COHORT_TRY_ACQUIRE_SHARED(...)                                                             \
    COHORT_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
/// The caller must not hold the capabilities (the function takes them itself).
#define COHORT_EXCLUDES(...) COHORT_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
/// Tells the analysis the capability is held here (checked at run time, if at all, elsewhere).
#define COHORT_ASSERT_CAPABILITY(x) COHORT_THREAD_ANNOTATION(assert_capability(x))
/// The function returns a reference to the given capability.
#define COHORT_RETURN_CAPABILITY(x) COHORT_THREAD_ANNOTATION(lock_returned(x))
/// Opts a function out of the analysis: for code whose locking the analysis cannot follow.
#define COHORT_NO_THREAD_SAFETY_ANALYSIS COHORT_THREAD_ANNOTATION(no_thread_safety_analysis)
