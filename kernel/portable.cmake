# Portable sources: no hardware access, compiled into the kernel and into host tests.
# Paths are relative to kernel/. Add new host-testable modules here.
set(COHORT_PORTABLE_SOURCES
  acpi/error.cc
  acpi/fadt.cc
  acpi/madt.cc
  acpi/srat.cc
  acpi/subtable.cc
  acpi/tables.cc
  arch/x86/cpu_compat.cc
  arch/x86/topology.cc
  console/args.cc
  console/line_editor.cc
  irq/routing.cc
  lib/cmdline.cc
  lib/format.cc
  lib/glob.cc
  lib/memmap.cc
  mm/buddy.cc
  mm/slab_heap.cc
  numa/node_map.cc
  sched/fair.cc
  sched/topology.cc
  smp/cpu_list.cc
  sync/lock_class.cc
  sync/lock_debug.cc
)
