# Portable sources: no hardware access, compiled into the kernel and into host tests.
# Paths are relative to kernel/. Add new host-testable modules here.
set(COHORT_PORTABLE_SOURCES
  lib/cmdline.cc
  lib/format.cc
  lib/glob.cc
  lib/memmap.cc
)
