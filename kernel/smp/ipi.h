// Inter-processor interrupts: kinds, sending, per-CPU counters, and the device-vector allocator.
#pragma once

#include <cstdint>

#include "smp/ipi_clusters.h"

namespace cohort {

struct CpuData;

// TLB shootdowns ride on Call (smp/tlb.h): there is no separate TLB vector to forget a handler for.
enum class IpiKind : uint8_t { Call = 0, Reschedule, Stop, Backtrace, Count };
inline constexpr int kIpiKinds = static_cast<int>(IpiKind::Count);
const char* ipi_kind_name(IpiKind k);

/// Installs the IPI handlers (once, on the boot CPU; the IDT is shared).
void ipi_init();

/// Sends one IPI of `kind` to `target`, which must be online (an IPI to a CPU that has not
/// finished bring-up is refused and logged: its IDT or per-CPU data may not exist yet).
bool ipi_send(CpuData* target, IpiKind kind);

/// Sends `kind` (Call or Reschedule) to every other CPU with one ICR write (the "all excluding
/// self" shorthand), if that is exact: every processor the firmware lists is one of ours and
/// online, so the broadcast reaches no CPU we do not run (a parked or failed one). Returns
/// false, sending nothing, when it is not; the caller then sends one by one.
bool ipi_send_all_others(IpiKind kind);
/// Says whether the shorthand is exact (set after bring-up; again whenever a CPU goes on- or
/// offline). ipi_send_all_others also checks that every CPU in the table is still online.
void ipi_set_broadcast_exact(bool exact);
bool ipi_broadcast_exact();

/// Sends one kind of IPI (Call or Reschedule) to many online CPUs with as few ICR writes as
/// the hardware allows: in x2APIC mode one per cluster of up to 16 CPUs (logical destination
/// mode), else one per CPU. add() may send early (more clusters than it holds); flush() sends
/// the rest. ipis_sent counts every CPU interrupted, cluster_ipis the logical ICR writes.
class IpiBatch {
  public:
    explicit IpiBatch(IpiKind kind);
    void add(CpuData* target);
    void flush();

  private:
    IpiKind kind_;
    bool logical_;
    ClusterBatch<8> clusters_;
};
/// Records the running CPU's x2APIC logical ID (after its LAPIC is up). One that does not have
/// the architectural form (one bit of 16) turns cluster IPIs off for every CPU, with a warning.
void ipi_note_logical_id(CpuData* cpu);
/// Whether multicasts use x2APIC cluster destinations (x2APIC mode, every logical ID sound,
/// not turned off with ipi.cluster=0).
bool ipi_cluster_mode();

/// Test hook: the next call IPI to `cpu` is not sent (ipi_send reports failure), as if it
/// were lost, so tests can show that remote calls recover from it.
void ipi_test_drop_next_call(uint32_t cpu);
/// A drop asked for by ipi_test_drop_next_call has not happened yet.
bool ipi_test_drop_pending();

/// Counts a received IPI on the running CPU (called by the handlers).
void ipi_count_received(IpiKind kind);

/// Device interrupt vectors: hands out a free one from 0x30-0xDF, or 0 when none is left.
uint8_t vector_alloc();
void vector_free(uint8_t vector);

} // namespace cohort
